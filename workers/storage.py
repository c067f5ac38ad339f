"""Datasets uploaded from chat, and what is left on disk after work ends: kept no longer than needed.

An upload from Slack or Teams is recorded with its owner and size when it is saved (so quotas can
count it) and tied to the job that reads it when the job is recorded; it is deleted when that job
ends, or, if no job ever used it (a form abandoned), after FMBOT_UPLOAD_RETENTION_HOURS. Files a
CLI user names are theirs and never recorded, so never deleted. Endpoint logs outlive their
endpoint by the same retention, for whoever looks into why it stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from workers import keys

log = logging.getLogger(__name__)
DAY_SECONDS = 86400


def record_upload(redis: Redis, path: Path, *, user: str, channel: str | None, size: int) -> None:
    """Count a saved upload against its user (and channel) for today and for what they keep."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    entry = {"user": user, "bytes": size, "at": time.time(), "job": None}
    pipe = redis.pipeline()
    pipe.hset(keys.uploads(), str(path), json.dumps(entry))
    pipe.sadd(keys.user_uploads(user), str(path))
    for who in filter(None, (user, channel)):
        pipe.incrby(keys.uploaded_on(who, day), size)
        pipe.expire(keys.uploaded_on(who, day), 2 * DAY_SECONDS)
    pipe.execute()


def uploaded_today(redis: Redis, who: str, day: str) -> int:
    return int(redis.get(keys.uploaded_on(who, day)) or 0)


def stored_bytes(redis: Redis, user: str) -> int:
    paths = list(redis.smembers(keys.user_uploads(user)))
    if not paths:
        return 0
    return sum(json.loads(raw)["bytes"] for raw in redis.hmget(keys.uploads(), paths) if raw)


def data_paths(spec: dict[str, Any]) -> Iterator[str]:
    """Every dataset path a job spec names (its DataRefs are `{"path": ..., "name": ...}`)."""
    for value in spec.values():
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            yield value["path"]


def pin(redis: Redis, job_id: str, spec: dict[str, Any]) -> None:
    """Tie the uploads `spec` reads to the job, so the retention sweep leaves them to the job's end."""
    paths = list(data_paths(spec))
    if not paths:
        return
    for path, raw in zip(paths, redis.hmget(keys.uploads(), paths), strict=True):
        if raw:
            entry = json.loads(raw)
            entry["job"] = job_id
            redis.hset(keys.uploads(), path, json.dumps(entry))


def release(redis: Redis, spec: dict[str, Any]) -> int:
    """Delete the uploads a finished job read (files never recorded as uploads are left alone);
    returns how many were deleted."""
    return _delete(redis, list(data_paths(spec)))


def _delete(redis: Redis, paths: list[str]) -> int:
    if not paths:
        return 0
    deleted = 0
    for path, raw in zip(paths, redis.hmget(keys.uploads(), paths), strict=True):
        if not raw:
            continue
        Path(path).unlink(missing_ok=True)
        pipe = redis.pipeline()
        pipe.hdel(keys.uploads(), path)
        pipe.srem(keys.user_uploads(json.loads(raw)["user"]), path)
        pipe.execute()
        deleted += 1
    return deleted


def sweep(redis: Redis, *, retention_hours: float, is_final: Any, logs_dir: Path | None,
          live_logs: set[str]) -> tuple[int, int]:
    """Delete uploads older than `retention_hours` that no unfinished job reads (`is_final(job_id)`
    says whether a job has ended, or is gone), and endpoint logs of that age no live endpoint
    writes to; returns (uploads, logs) deleted."""
    cutoff = time.time() - retention_hours * 3600
    stale = []
    for path, raw in redis.hscan_iter(keys.uploads()):
        entry = json.loads(raw)
        if entry["at"] < cutoff and (entry["job"] is None or is_final(entry["job"])):
            stale.append(path.decode() if isinstance(path, bytes) else path)
    logs = 0
    if logs_dir is not None and logs_dir.is_dir():
        for file in logs_dir.glob("*.log"):
            if str(file) not in live_logs and file.stat().st_mtime < cutoff:
                file.unlink(missing_ok=True)
                logs += 1
    return _delete(redis, stale), logs

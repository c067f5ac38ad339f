"""The job ledger: fmbot's own record of every job, kept in Redis.

RQ's job hash is an implementation detail that expires; the ledger is what users see (`jobs`,
`status`, App Home) and what notifications are rendered from. A record is written before the user
is told a job is queued, and every state change is written here before it is posted anywhere.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from redis import Redis
from redis.exceptions import WatchError

from platforms.base import JobState, Progress
from workers import keys, telemetry

JobKind = Literal["finetune", "evaluate", "deploy", "import"]
_PREFIX = {"finetune": "ft", "evaluate": "ev", "deploy": "dp", "import": "im"}


class ReplyTarget(BaseModel):
    """Where the job was asked for: the channel, and the thread its updates go to."""

    channel: str
    thread_ts: str | None = None


class JobRecord(BaseModel):
    id: str
    kind: JobKind
    state: JobState = JobState.QUEUED
    model: str
    task: str
    spec: dict[str, Any]
    requester: str
    reply_to: ReplyTarget | None = None
    trace_id: str = Field(default_factory=telemetry.current_trace_or_new)
    progress: Progress | None = None
    metrics: dict[str, float] = {}
    baseline_metrics: dict[str, float] = {}
    output_model: str | None = None
    loss_history: list[tuple[int, float]] = []
    samples: list[dict[str, Any]] = []
    message: str | None = None
    result: dict[str, Any] = {}
    error: str | None = None
    external_id: str | None = None
    attempts: int = 0
    # Costly work waits for an approver: "pending" until someone allowed to approve clicks Approve.
    approval: Literal["pending", "approved"] | None = None
    approved_by: str | None = None
    gpu_hours: float = 0.0
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def elapsed_seconds(self) -> float:
        start = self.started_at or self.created_at
        end = self.finished_at or datetime.now(UTC)
        return max((end - start).total_seconds(), 0.0)

    def public(self) -> dict[str, Any]:
        """The record as shown to users (CLI `--json`, Slack): no internal spec paths."""
        data = self.model_dump(mode="json", exclude={"spec"})
        data["elapsed_seconds"] = round(self.elapsed_seconds, 1)
        return data


class JobNotFound(LookupError):
    pass


def new_job_id(kind: JobKind) -> str:
    return f"{_PREFIX[kind]}-{secrets.token_hex(4)}"


class Ledger:
    def __init__(self, redis: Redis):
        self.redis = redis

    def create(self, record: JobRecord) -> JobRecord:
        score = record.created_at.timestamp()
        with self.redis.pipeline() as pipe:
            pipe.set(keys.job(record.id), record.model_dump_json(), nx=True)
            pipe.zadd(keys.jobs(), {record.id: score})
            pipe.zadd(keys.user_jobs(record.requester), {record.id: score})
            created, *_ = pipe.execute()
        if not created:
            raise ValueError(f"job {record.id} already exists")
        return record

    def get(self, job_id: str) -> JobRecord:
        raw = self.redis.get(keys.job(job_id))
        if raw is None:
            raise JobNotFound(job_id)
        return JobRecord.model_validate_json(raw)

    def update(self, job_id: str, change: Callable[[JobRecord], None]) -> JobRecord:
        """Apply `change` to the stored record atomically (optimistic locking with WATCH)."""
        key = keys.job(job_id)
        while True:
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(job_id)
                    record = JobRecord.model_validate_json(raw)
                    change(record)
                    pipe.multi()
                    pipe.set(key, record.model_dump_json())
                    pipe.execute()
                    return record
                except WatchError:
                    time.sleep(0.005)

    def transition(self, job_id: str, state: JobState, **fields: Any) -> tuple[JobRecord, bool]:
        """Move a job to `state` unless it is already final; says whether it moved.

        A final state is never left, so a late progress report cannot revive a canceled job and a
        retried delivery cannot announce a second completion.
        """
        moved = False

        def change(record: JobRecord) -> None:
            nonlocal moved
            if record.state.final:
                return
            moved = True
            record.state = state
            now = datetime.now(UTC)
            if state == JobState.RUNNING and record.started_at is None:
                record.started_at = now
            if state.final:
                record.finished_at = now
            for name, value in fields.items():
                setattr(record, name, value)

        record = self.update(job_id, change)
        return record, moved

    def recent(self, *, user: str | None = None, limit: int = 20) -> list[JobRecord]:
        ids = self.redis.zrevrange(keys.user_jobs(user) if user else keys.jobs(), 0, limit - 1)
        if not ids:
            return []
        raws = self.redis.mget([keys.job(i.decode() if isinstance(i, bytes) else i) for i in ids])
        return [JobRecord.model_validate_json(raw) for raw in raws if raw is not None]

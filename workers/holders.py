"""Who holds a lock: a lock's value names the process that took it, so another can tell it died.

A lock that outlives its holder (a SIGKILLed work horse, a worker that lost Redis mid-delivery)
would otherwise hold up what it guards until it expires. The value says which host, process id and
process start time took it (the start time tells a reused pid from the holder), and the RQ worker
the holder belonged to, whose own key in Redis expires soon after that worker dies. A process on
the holder's host asks the kernel; one elsewhere asks Redis whether the holder's worker lives.
When neither can tell, the holder is taken to be alive and the lock's expiry decides.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from pathlib import Path

from pydantic import BaseModel, ValidationError
from redis import Redis

WORKER_KEY_PREFIX = "rq:worker:"  # RQ's own key of a live worker (rq.worker.Worker.redis_worker_namespace_prefix)
_worker_name: str | None = None


class Holder(BaseModel):
    token: str
    host: str
    pid: int
    started: str | None = None
    worker: str | None = None


def install_worker(name: str) -> None:
    """Name the RQ worker this process (and the work horses it forks) delivers for."""
    global _worker_name
    _worker_name = name


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None
    when there is no such process or it is a zombie (dead, not yet reaped by its parent)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


@functools.cache
def _process(pid: int) -> tuple[str, str | None]:
    """Host and start time of process `pid`, read once per process (a forked work horse has its own pid)."""
    return socket.gethostname(), _start_time(pid)


def me() -> Holder:
    """This process as a lock holder, with a fresh token."""
    pid = os.getpid()
    host, started = _process(pid)
    return Holder(token=secrets.token_hex(8), host=host, pid=pid, started=started, worker=_worker_name)


def parse(value: bytes | str | None) -> Holder | None:
    if value is None:
        return None
    try:
        return Holder.model_validate_json(value)
    except ValidationError:
        return None


def is_dead(redis: Redis, holder: Holder) -> bool:
    """True only when the holder is known to be gone."""
    if holder.host == socket.gethostname() and holder.started is not None:
        return _start_time(holder.pid) != holder.started
    if holder.worker is not None:
        exists, death = redis.pipeline().exists(WORKER_KEY_PREFIX + holder.worker) \
            .hget(WORKER_KEY_PREFIX + holder.worker, "death").execute()
        return not exists or death is not None  # RQ keeps a dead worker's key a minute, marked with its death
    return False

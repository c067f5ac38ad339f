"""What workers record for operators: the trace a log line belongs to, and counters kept in Redis.

Jobs run in RQ work horses, forked and gone after each job, often on other hosts than the bot, and
commands are answered in the bot's answerer process, so an in-process Prometheus counter would die
with the horse or miss the answers. Job counts, durations, notification retries and commands are
therefore added up in one Redis hash (`keys.metrics()`), which survives restarts with
the AOF, and the bot's `/metrics` reads it at scrape time (`bot/observability.py`).

The trace id starts with the Slack command, is stored on the JobRecord, and is bound again by the
worker that runs the job, so every log line about one request carries the same id.
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from typing import Any

from redis import Redis

from workers import keys

JOB_DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600)
_SEP = "|"

trace_id: ContextVar[str | None] = ContextVar("fmbot_trace_id", default=None)
job_id: ContextVar[str | None] = ContextVar("fmbot_job_id", default=None)


def new_trace_id() -> str:
    return secrets.token_hex(8)


def start_trace() -> str:
    """A fresh trace for a new request on this thread (listener threads are reused)."""
    value = new_trace_id()
    trace_id.set(value)
    job_id.set(None)
    return value


def current_trace_or_new() -> str:
    """The trace of the request being served, so a job created by it carries the same id."""
    return trace_id.get() or new_trace_id()


def bind_job(job: str, trace: str) -> None:
    job_id.set(job)
    trace_id.set(trace)


def _field(*parts: str) -> str:
    return _SEP.join(parts)


def _duration_bucket(seconds: float) -> str | None:
    """The one histogram bucket `seconds` falls in: the smallest bound it does not exceed (None above
    the largest, where only the count, Prometheus's +Inf bucket, takes it)."""
    return next((f"{bound:g}" for bound in JOB_DURATION_BUCKETS if seconds <= bound), None)


def record_job_state(redis: Redis, kind: str, state: str, *, seconds: float | None = None) -> None:
    """Count a job reaching `state`; a final state with `seconds` also lands in the duration histogram.

    The histogram keeps one counter per bucket, not Prometheus's cumulative ones, so an observation
    is one HINCRBY whatever its value; the collector adds them up at scrape time. (The field is
    `duration_in_bucket`, not the cumulative layout's `duration_bucket`, so old counters are never
    added up a second time.)"""
    with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.metrics(), _field("jobs", kind, state), 1)
        if seconds is not None:
            if (bucket := _duration_bucket(seconds)) is not None:
                pipe.hincrby(keys.metrics(), _field("duration_in_bucket", kind, bucket), 1)
            pipe.hincrby(keys.metrics(), _field("duration_count", kind), 1)
            pipe.hincrbyfloat(keys.metrics(), _field("duration_sum", kind), seconds)
        pipe.execute()


def record_command(redis: Redis, label: str, outcome: str) -> None:
    redis.hincrby(keys.metrics(), _field("commands", label, outcome), 1)


def record_notification_retry(redis: Redis, reason: str) -> None:
    redis.hincrby(keys.metrics(), _field("notify_retries", reason), 1)


def read_counters(redis: Redis) -> dict[tuple[str, ...], float]:
    """Every counter as {(name, *labels): value}, for the scrape-time collector."""
    raw: dict[Any, Any] = redis.hgetall(keys.metrics())
    counters: dict[tuple[str, ...], float] = {}
    for name, value in raw.items():
        text = name.decode() if isinstance(name, bytes) else name
        counters[tuple(text.split(_SEP))] = float(value)
    return counters

"""The outbox: every job notification is kept in Redis until Slack has taken it.

A notification is appended to its job's list, then the list is delivered from the head, in order,
one entry at a time; an entry leaves the list only once all its Web API calls succeeded. When Slack
stays unavailable after slack_sdk's own retries (429 with Retry-After, 5xx, dropped connections),
the entry stays at the head, remembers how many of its calls already went through (so a retry posts
nothing twice), and a delivery is scheduled on the outbox queue with a growing delay. Later events
of the same job queue up behind it, so the thread reads in order once Slack is back.

One drainer per job at a time (a lock key), so a worker and a scheduled delivery never post the
same entry twice.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from pydantic import BaseModel
from redis import Redis
from slack_sdk.errors import SlackApiError

from workers import keys, runtime
from workers.ledger import JobNotFound, JobRecord, Ledger
from workers.notifier import JobEvent, Notifier, PartialDelivery
from workers.queues import outbox_queue

log = logging.getLogger(__name__)
LOCK_SECONDS = 300  # outlives one entry's slack_sdk retries (Retry-After included); renewed per entry
MAX_DELAY_SECONDS = 60
MAX_ATTEMPTS = 60  # about an hour of an unreachable Slack before a notice is given up


class OutboxEntry(BaseModel):
    record: JobRecord
    event: JobEvent
    done: int = 0
    attempts: int = 0


def _transient(exc: BaseException) -> bool:
    """Slack down, rate limiting, a network error: worth retrying. An error Slack answered with
    (channel_not_found, not_in_channel, invalid_blocks) will be the same next time."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200)
        return status == 429 or status >= 500
    return True


def post(redis: Redis, notifier: Notifier, record: JobRecord, event: JobEvent) -> JobRecord:
    """Queue a notification and try to deliver everything pending for the job now."""
    redis.rpush(keys.outbox(record.id), OutboxEntry(record=record, event=event).model_dump_json())
    drain(redis, notifier, record.id)
    try:
        return Ledger(redis).get(record.id)
    except JobNotFound:
        return record


def drain(redis: Redis, notifier: Notifier, job_id: str) -> bool:
    """Deliver the job's pending notifications in order; True when none is left."""
    while redis.llen(keys.outbox(job_id)):
        token = secrets.token_hex(8)
        lock = keys.outbox_lock(job_id)
        if not redis.set(lock, token, nx=True, ex=LOCK_SECONDS):
            # The holder delivers our entry too, as it drains until the list is empty; should it
            # have died holding the lock, this later attempt finds the lock expired.
            _schedule(redis, job_id, max(int(redis.ttl(lock)), 0) + 1)
            return False
        try:
            if not _deliver_all(redis, notifier, job_id, lock):
                return False
        finally:
            if redis.get(lock) == token.encode():
                redis.delete(lock)
    return True


def _schedule(redis: Redis, job_id: str, delay: int) -> None:
    outbox_queue(redis).enqueue_in(timedelta(seconds=delay), "workers.outbox.deliver_pending", job_id,
                                   result_ttl=0, failure_ttl=3600)


def _deliver_all(redis: Redis, notifier: Notifier, job_id: str, lock: str) -> bool:
    ledger, key = Ledger(redis), keys.outbox(job_id)
    while (raw := redis.lindex(key, 0)) is not None:
        redis.expire(lock, LOCK_SECONDS)
        entry = OutboxEntry.model_validate_json(raw)
        record = entry.record
        try:
            current = ledger.get(job_id)
            record = record.model_copy(update={"reply_to": current.reply_to})
        except JobNotFound:
            pass
        try:
            notifier.job_changed(record, entry.event, **({"skip": entry.done} if entry.done else {}))
        except Exception as exc:
            done, cause = (exc.done, exc.__cause__ or exc) if isinstance(exc, PartialDelivery) else (entry.done, exc)
            if not _transient(cause) or entry.attempts >= MAX_ATTEMPTS:
                log.error("dropped %s notice of job %s after %d attempts: %s", entry.event, job_id,
                          entry.attempts + 1, cause)
                redis.lpop(key)
                continue
            entry.done, entry.attempts = done, entry.attempts + 1
            redis.lset(key, 0, entry.model_dump_json())
            delay = min(2 ** entry.attempts, MAX_DELAY_SECONDS)
            log.warning("could not post %s for job %s (%s); trying again in %ss", entry.event, job_id, cause, delay)
            _schedule(redis, job_id, delay)
            return False
        redis.lpop(key)
    return True


def deliver_pending(job_id: str) -> bool:
    """RQ job on the outbox queue: a later attempt at a job's notifications."""
    rt = runtime.current()
    return drain(rt.redis, rt.notifier, job_id)


def pending(redis: Redis, job_id: str) -> list[OutboxEntry]:
    return [OutboxEntry.model_validate_json(raw) for raw in redis.lrange(keys.outbox(job_id), 0, -1)]

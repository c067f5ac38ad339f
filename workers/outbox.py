"""The outbox: every job notification is kept in Redis until Slack has taken it.

A notification is appended to its job's list (in the same atomic step as the ledger change it
announces, when it announces one), then the list is delivered from the head, in order, one entry at
a time; an entry leaves the list only once all its Web API calls succeeded. When the chat
stays unavailable after its client's own retries (the notifier says which failures are transient),
the entry stays at the head, remembers how many of its calls already went through (so a retry posts
nothing twice), and a delivery is scheduled on the outbox queue with a growing delay. Later events
of the same job queue up behind it, so the thread reads in order once Slack is back.

One drainer per job at a time (a lock key), so a worker and a scheduled delivery never post the
same entry twice. The lock names its holder (`workers.holders`): a process that finds it held by one
known to be dead (a SIGKILLed work horse, a worker that lost Redis mid-delivery) takes it over at
once instead of leaving the job's thread silent until the lock expires.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from redis import Redis

from workers import holders, keys
from workers.ledger import JobNotFound, JobRecord, Ledger
from workers.notifier import JobEvent, Notifier, PartialDelivery
from workers.queues import outbox_queue

log = logging.getLogger(__name__)
LOCK_SECONDS = 300  # outlives one entry's slack_sdk retries (Retry-After included); renewed per entry
# Compare-and-set of a lock: KEYS[1] the lock, ARGV[1] the value it must hold, ARGV[2] the new value
# ("" deletes it), ARGV[3] its expiry. 1 when it held ARGV[1].
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
return 1
"""
MAX_DELAY_SECONDS = 60
MAX_ATTEMPTS = 60  # about an hour of an unreachable Slack before a notice is given up


class OutboxEntry(BaseModel):
    record: JobRecord
    event: JobEvent
    done: int = 0
    attempts: int = 0


class Notice:
    """A notification on its way into the outbox, appended together with a try at the job's drain
    lock: with the ledger change it announces (as that change's `Along`), or on its own by `post`.
    When it is alone in the list and the lock was free, it goes to Slack without another look at
    Redis."""

    def __init__(self, event: JobEvent):
        self.event, self.token = event, holders.me().model_dump_json()
        self.entry: OutboxEntry | None = None
        self.alone = self.locked = False

    def commands(self, record: JobRecord) -> list[tuple[Any, ...]]:
        self.entry = OutboxEntry(record=record, event=self.event)
        return [("RPUSH", keys.outbox(record.id), self.entry.model_dump_json()),
                ("SET", keys.outbox_lock(record.id), self.token, "NX", "EX", LOCK_SECONDS)]

    def written(self, replies: list[Any]) -> None:
        queued, locked = replies
        self.alone, self.locked = queued == 1, bool(locked)


def post(redis: Redis, notifier: Notifier, record: JobRecord, event: JobEvent) -> JobRecord:
    """Queue a notification and try to deliver everything pending for the job now. The job's
    stored reply target is read in the same round trip: an earlier notice may have just started
    the thread this one belongs in."""
    notice = Notice(event)
    with redis.pipeline() as pipe:
        for command in notice.commands(record):
            pipe.execute_command(*command)
        pipe.get(keys.job(record.id))
        *replies, stored = pipe.execute()
    notice.written(replies)
    if stored is not None:
        notice.entry.record = _with_reply_target(notice.entry.record, stored)
    return deliver(redis, notifier, notice)


def deliver(redis: Redis, notifier: Notifier, notice: Notice) -> JobRecord:
    """Deliver a queued notice and everything after it; returns the job as stored afterwards."""
    job_id = notice.entry.record.id
    lock = keys.outbox_lock(job_id)
    if not notice.locked and _take_from_dead_holder(redis, lock, notice.token):
        notice.locked, notice.alone = True, False
    if not notice.locked:
        _wait_for_holder(redis, job_id)
    else:
        try:
            delivered = _deliver_all(redis, notifier, job_id, lock, head=notice.entry if notice.alone else None)
        finally:
            _release(redis, lock, notice.token)
        if delivered:
            drain(redis, notifier, job_id)
    try:
        return Ledger(redis).get(job_id)
    except JobNotFound:
        return notice.entry.record


def drain(redis: Redis, notifier: Notifier, job_id: str) -> bool:
    """Deliver the job's pending notifications in order; True when none is left."""
    while redis.llen(keys.outbox(job_id)):
        token = holders.me().model_dump_json()
        lock = keys.outbox_lock(job_id)
        if not redis.set(lock, token, nx=True, ex=LOCK_SECONDS) and not _take_from_dead_holder(redis, lock, token):
            _wait_for_holder(redis, job_id)
            return False
        try:
            if not _deliver_all(redis, notifier, job_id, lock):
                return False
        finally:
            _release(redis, lock, token)
    return True


def _wait_for_holder(redis: Redis, job_id: str) -> None:
    """The lock's holder delivers our entry too, as it drains until the list is empty; should it
    have died holding the lock, a later attempt finds the lock expired."""
    _schedule(redis, job_id, max(int(redis.ttl(keys.outbox_lock(job_id))), 0) + 1)


def _take_from_dead_holder(redis: Redis, lock: str, token: str) -> bool:
    """Take the lock over when its holder is known to be dead; True when this process holds it now."""
    held = redis.get(lock)
    holder = holders.parse(held)
    if holder is None or not holders.is_dead(redis, holder):
        return False
    taken = bool(redis.eval(_SWAP, 1, lock, held, token, LOCK_SECONDS))
    if taken:
        log.warning("took over the outbox lock %s from dead holder %s (pid %s on %s)", lock, holder.worker,
                    holder.pid, holder.host)
    return taken


def _release(redis: Redis, lock: str, token: str) -> None:
    redis.eval(_SWAP, 1, lock, token, "", 0)


def _with_reply_target(record: JobRecord, stored: bytes) -> JobRecord:
    return record.model_copy(update={"reply_to": JobRecord.model_validate_json(stored).reply_to})


def _schedule(redis: Redis, job_id: str, delay: int) -> None:
    outbox_queue(redis).enqueue_in(timedelta(seconds=delay), "workers.jobs.deliver_pending", job_id,
                                   result_ttl=0, failure_ttl=3600)


def _deliver_all(redis: Redis, notifier: Notifier, job_id: str, lock: str, head: OutboxEntry | None = None) -> bool:
    """Deliver from the head of the list while holding `lock`; `head` is that entry, with the
    current reply target, when the caller has just queued it alone."""
    key = keys.outbox(job_id)
    while True:
        if head is not None:
            entry, head = head, None
        else:
            with redis.pipeline(transaction=False) as pipe:
                pipe.lindex(key, 0)
                pipe.expire(lock, LOCK_SECONDS)
                pipe.get(keys.job(job_id))
                raw, _, stored = pipe.execute()
            if raw is None:
                return True
            entry = OutboxEntry.model_validate_json(raw)
            if stored is not None:
                entry.record = _with_reply_target(entry.record, stored)
        try:
            notifier.job_changed(entry.record, entry.event, **({"skip": entry.done} if entry.done else {}))
        except Exception as exc:
            done, cause = (exc.done, exc.__cause__ or exc) if isinstance(exc, PartialDelivery) else (entry.done, exc)
            if not notifier.is_transient(cause) or entry.attempts >= MAX_ATTEMPTS:
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


def pending(redis: Redis, job_id: str) -> list[OutboxEntry]:
    return [OutboxEntry.model_validate_json(raw) for raw in redis.lrange(keys.outbox(job_id), 0, -1)]

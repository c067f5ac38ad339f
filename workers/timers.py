"""Timers that keep costly things from running forgotten: approval expiry, endpoint time to live.

Each timer is a record in Redis (`fmbot:timer:{kind}:{subject}`, naming the one firing it waits for) and a
job in RQ's scheduled-job registry, so both survive restarts of the bot and the workers. RQ's scheduler
enqueues a due job once (one scheduler holds the lock), and `fire` runs its action only when the record
still names that firing and no worker ran it before (SET NX on `fmbot:timer:fired:{id}`): a timer fires
once however many workers run, a rescheduled timer's old firing does nothing, and a cancelled one
(the endpoint deleted, the job approved) finds no record.

Durations come from the settings (FMBOT_APPROVAL_EXPIRY_HOURS, FMBOT_TTL_WARNING_HOURS, ...) and the
policy, and every action reads the time from `now()`, so tests run whole lifecycles in seconds.

An endpoint's lease (`fmbot:lease:{name}`) ties it to the deploy job whose thread it reports to, its owner,
its expiry and its hourly price: the warning an hour before the end (with Keep and Delete buttons), the
deletion at the end and the actual cost charged to the month all come from it.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from platforms.base import JobState, PlatformError
from workers import costs, keys, runtime
from workers.ledger import JobNotFound, JobRecord, ReplyTarget
from workers.notifier import ChatMessage, JobEvent

log = logging.getLogger(__name__)
FIRED_MARKER_SECONDS = 7 * 24 * 3600
REMOTE_DELETE_WAIT_SECONDS = 45.0
EARLY_SECONDS = 1.5


def now() -> datetime:
    return datetime.now(UTC)


class Timer(BaseModel):
    kind: str
    subject: str
    at: datetime
    action: str
    firing: str

    @property
    def rq_id(self) -> str:
        """One RQ job per firing: a timer its own action moves (the idle check) must not reuse the id of the
        job running it, which RQ saves again as finished when the action returns."""
        return f"fmbot-timer-{self.kind}-{self.subject}-{int(self.at.timestamp() * 1000)}"


def schedule(rt: runtime.Runtime, kind: str, subject: str, at: datetime, action: str) -> Timer:
    """Set (or move) the timer `kind` of `subject` to fire `action` at `at`."""
    timer = Timer(kind=kind, subject=subject, at=at, action=action, firing=f"{kind}:{subject}:{at.timestamp():.3f}")
    earlier = pending(rt, kind, subject)
    rt.redis.set(keys.timer(kind, subject), timer.model_dump_json())
    rt.queue.enqueue_at(at, "workers.timers.fire", kind, subject, timer.firing, job_id=timer.rq_id,
                        result_ttl=3600, failure_ttl=7 * 24 * 3600, description=f"fmbot timer {timer.firing}")
    if earlier is not None and earlier.rq_id != timer.rq_id:
        _unschedule(rt, earlier)
    return timer


def _unschedule(rt: runtime.Runtime, timer: Timer) -> None:
    """Take a timer's job out of RQ's scheduled jobs (one already taken by a worker is left to find no record)."""
    try:
        job = Job.fetch(timer.rq_id, connection=rt.redis, serializer=rt.queue.serializer)
    except NoSuchJobError:
        return
    if job.get_status(refresh=False) == JobStatus.SCHEDULED:
        rt.queue.scheduled_job_registry.remove(job)
        job.delete()


def pending(rt: runtime.Runtime, kind: str, subject: str) -> Timer | None:
    raw = rt.redis.get(keys.timer(kind, subject))
    return Timer.model_validate_json(raw) if raw else None


def cancel(rt: runtime.Runtime, kind: str, subject: str) -> None:
    """Forget the timer; its scheduled job is removed too (and would find no record if it ran)."""
    timer = pending(rt, kind, subject)
    rt.redis.delete(keys.timer(kind, subject))
    if timer is not None:
        _unschedule(rt, timer)


def fire(kind: str, subject: str, firing: str) -> str:
    """RQ job: run a due timer's action once, if it is still the timer's current firing."""
    rt = runtime.current()
    raw = rt.redis.get(keys.timer(kind, subject))
    timer = Timer.model_validate_json(raw) if raw else None
    if timer is None or timer.firing != firing:
        return "cancelled or moved"
    if not rt.redis.set(keys.timer_fired(firing), "1", nx=True, ex=FIRED_MARKER_SECONDS):
        return "already fired"
    if rt.redis.get(keys.timer(kind, subject)) == raw:
        rt.redis.delete(keys.timer(kind, subject))
    early = (timer.at - now()).total_seconds()
    if 0 < early <= EARLY_SECONDS:
        time.sleep(early)  # RQ's scheduler keeps whole seconds, so a job can come due up to a second early
    ACTIONS[timer.action](rt, subject)
    return f"fired {timer.action}"


# -- approvals -------------------------------------------------------------------------------------------

def approval_waiting(rt: runtime.Runtime, record: JobRecord) -> None:
    """A job went to approval: it expires after FMBOT_APPROVAL_EXPIRY_HOURS, approvers are reminded before."""
    config = rt.costs
    expires = now() + timedelta(hours=config.approval_expiry_hours)
    schedule(rt, "approval-expiry", record.id, expires, "approval_expired")
    _note(rt, record.id, approval_expires_at=expires.isoformat())
    if 0 < config.approval_reminder_hours < config.approval_expiry_hours:
        schedule(rt, "approval-reminder", record.id, expires - timedelta(hours=config.approval_reminder_hours),
                 "approval_reminder")


def approval_decided(rt: runtime.Runtime, job_id: str) -> None:
    cancel(rt, "approval-expiry", job_id)
    cancel(rt, "approval-reminder", job_id)


def _approval_reminder(rt: runtime.Runtime, job_id: str) -> None:
    try:
        record = rt.ledger.get(job_id)
    except JobNotFound:
        return
    if record.approval == "pending" and not record.state.final:
        rt.notify(record, JobEvent.APPROVAL_REMINDER)


def _approval_expired(rt: runtime.Runtime, job_id: str) -> None:
    hours = rt.costs.approval_expiry_hours
    try:
        record, moved = rt.move(job_id, JobState.CANCELED, JobEvent.CANCELED,
                                when=lambda stored: stored.approval == "pending",
                                message=f"rejected: nobody approved it within {hours:g} h")
    except JobNotFound:
        return
    if moved:
        settle(rt, record)
    cancel(rt, "approval-reminder", job_id)


# -- settling a finished job -----------------------------------------------------------------------------

def settle(rt: runtime.Runtime, record: JobRecord) -> JobRecord:
    """A final job's actual duration and cost on its record, its charge replaced by the actual cost, and a
    completed fine-tune's or evaluation's throughput kept for the next estimate. A deploy's endpoint is
    settled when it ends, not when the job does (unless the deploy failed)."""
    if record.kind == "deploy" and record.state == JobState.COMPLETED:
        return record
    seconds = (record.finished_at - record.started_at).total_seconds() if record.started_at and record.finished_at else 0.0
    usd = costs.actual_usd(record.estimate, seconds)

    def actual(stored: JobRecord) -> None:
        stored.actual_seconds, stored.actual_usd = round(seconds, 2), round(usd, 4)

    record = rt.ledger.update(record.id, actual)
    when = costs.month(record.created_at)
    entry = costs.charged(rt.redis, record.id, when=when)
    if entry is not None:
        costs.charge(rt.redis, entry.model_copy(update={"usd": usd, "actual": True}), when=when)
    estimate = record.estimate
    if (record.state == JobState.COMPLETED and record.kind in ("finetune", "evaluate") and estimate is not None
            and estimate.throughput_key and estimate.work > 0 and seconds > 0):
        costs.record_throughput(rt.redis, estimate.throughput_key, estimate.work / seconds)
    return record


# -- endpoints -------------------------------------------------------------------------------------------

class Lease(BaseModel):
    endpoint: str
    job_id: str
    owner: str
    host: str | None = None
    started_at: datetime
    expires_at: datetime | None = None
    hourly_usd: float = 0.0
    instances: int = 1
    idle_told_since: datetime | None = None  # the quiet stretch the owner was last told about

    def cost_so_far(self, at: datetime) -> float:
        return self.hourly_usd * self.instances * max((at - self.started_at).total_seconds(), 0) / 3600


def lease(rt: runtime.Runtime, name: str) -> Lease | None:
    raw = rt.redis.get(keys.lease(name))
    return Lease.model_validate_json(raw) if raw else None


def endpoint_started(rt: runtime.Runtime, record: JobRecord, *, host: str | None = None) -> Lease:
    """A deploy completed: its endpoint's lease, and the warning and deletion timers of its time to live."""
    ttl = record.spec.get("ttl_hours")
    started = now()
    estimate = record.estimate
    held = Lease(endpoint=record.result.get("endpoint") or record.spec["endpoint"], job_id=record.id,
                 owner=record.requester, host=host, started_at=started,
                 expires_at=started + timedelta(hours=ttl) if ttl else None,
                 hourly_usd=(estimate.hourly_usd or 0.0) if estimate else 0.0,
                 instances=estimate.instances if estimate else 1)
    rt.redis.set(keys.lease(held.endpoint), held.model_dump_json())
    _schedule_end(rt, held)
    schedule(rt, "endpoint-idle", held.endpoint, started + timedelta(hours=rt.costs.idle_hours), "endpoint_idle")
    return held


def _note(rt: runtime.Runtime, job_id: str, **values: Any) -> None:
    """Keep what a timer's notice tells (when it ends, how long Keep adds) on the job's record, which the
    chat surfaces render from."""
    def note(stored: JobRecord) -> None:
        stored.result = {**stored.result, **values}

    try:
        rt.ledger.update(job_id, note)
    except JobNotFound:
        pass


def _schedule_end(rt: runtime.Runtime, held: Lease) -> None:
    _note(rt, held.job_id, expires_at=held.expires_at.isoformat() if held.expires_at else None,
          keep_hours=rt.costs.ttl_extension_hours)
    if held.expires_at is None:
        return
    schedule(rt, "endpoint-expiry", held.endpoint, held.expires_at, "endpoint_expired")
    warning = held.expires_at - timedelta(hours=rt.costs.ttl_warning_hours)
    if rt.costs.ttl_warning_hours > 0 and warning > now():
        schedule(rt, "endpoint-warning", held.endpoint, warning, "endpoint_warning")


def extend(rt: runtime.Runtime, name: str, hours: float) -> Lease:
    """Keep an endpoint `hours` longer than it would have lived (from now, if it was about to end)."""
    held = lease(rt, name)
    if held is None:
        raise PlatformError(f"{name} has no time to live to extend", hint="See `endpoints`")
    base = max(held.expires_at or now(), now())
    held = held.model_copy(update={"expires_at": base + timedelta(hours=hours)})
    rt.redis.set(keys.lease(name), held.model_dump_json())
    cancel(rt, "endpoint-warning", name)
    _schedule_end(rt, held)
    return held


def endpoint_ended(rt: runtime.Runtime, name: str) -> Lease | None:
    """The endpoint is gone (deleted by its owner, an admin or its time to live): its timers are cancelled
    and its deploy job charged what it really cost."""
    held = lease(rt, name)
    for kind in ("endpoint-warning", "endpoint-expiry", "endpoint-idle"):
        cancel(rt, kind, name)
    if held is None:
        return None
    rt.redis.delete(keys.lease(name))
    try:
        record = rt.ledger.get(held.job_id)
    except JobNotFound:
        return held
    usd = held.cost_so_far(now())
    when = costs.month(record.created_at)
    entry = costs.charged(rt.redis, record.id, when=when)
    if entry is not None:
        costs.charge(rt.redis, entry.model_copy(update={"usd": usd, "actual": True}), when=when)

    def actual(stored: JobRecord) -> None:
        stored.actual_seconds = round((now() - held.started_at).total_seconds(), 2)
        stored.actual_usd = round(usd, 4)

    rt.ledger.update(record.id, actual)
    return held


def _endpoint_warning(rt: runtime.Runtime, name: str) -> None:
    held = lease(rt, name)
    if held is None:
        return
    try:
        record = rt.ledger.get(held.job_id)
    except JobNotFound:
        return
    rt.notify(record, JobEvent.ENDPOINT_EXPIRING)


def _endpoint_expired(rt: runtime.Runtime, name: str) -> None:
    """Delete the endpoint where its processes run (its host's queue for a local one served elsewhere),
    then say so in its deploy thread."""
    held = lease(rt, name)
    if held is None:
        return
    try:
        if held.host is None or held.host == socket.gethostname():
            rt.platform.delete_endpoint(name)
        else:
            rt.run_on_host(held.host, "workers.jobs.delete_endpoint", name, wait=REMOTE_DELETE_WAIT_SECONDS)
    except PlatformError as exc:
        log.warning("endpoint %s past its time to live could not be deleted: %s", name, exc)
    endpoint_ended(rt, name)
    try:
        record = rt.ledger.get(held.job_id)
    except JobNotFound:
        return
    rt.notify(record, JobEvent.ENDPOINT_EXPIRED)


def _endpoint_idle(rt: runtime.Runtime, name: str) -> None:
    """Tell the owner once per quiet stretch that nobody called the endpoint for FMBOT_IDLE_HOURS, with what
    it cost so far, and look again an idle period after the last request."""
    held = lease(rt, name)
    if held is None:
        return
    activity = None
    if held.host is None or held.host == socket.gethostname():
        try:
            activity = rt.platform.endpoint_activity(name)
        except PlatformError as exc:
            log.warning("could not read the requests of endpoint %s: %s", name, exc)
    quiet_since = (activity.last_request_at if activity and activity.last_request_at else None) or held.started_at
    period = timedelta(hours=rt.costs.idle_hours)
    at = now()
    if at - quiet_since >= period and held.idle_told_since != quiet_since:
        rt.redis.set(keys.lease(name), held.model_copy(update={"idle_told_since": quiet_since}).model_dump_json())
        _note(rt, held.job_id, idle_hours=round((at - quiet_since).total_seconds() / 3600, 2),
              running_usd=round(held.cost_so_far(at), 2), requests=activity.requests if activity else 0)
        try:
            rt.notify(rt.ledger.get(held.job_id), JobEvent.ENDPOINT_IDLE)
        except JobNotFound:
            pass
    following = quiet_since + period
    schedule(rt, "endpoint-idle", name, following if following > at else at + period, "endpoint_idle")


# -- the channel digest -----------------------------------------------------------------------------------

DIGEST_JOBS = 500  # recent ledger records a digest looks through for the channel's finished jobs


class DigestChannel(BaseModel):
    target: ReplyTarget
    since: datetime  # the digest covers what finished after this: the last digest, or the opt-in


def digest_on(rt: runtime.Runtime, target: ReplyTarget) -> datetime:
    """Opt `target`'s channel in: a digest every FMBOT_DIGEST_INTERVAL_HOURS, the first one interval from now."""
    rt.redis.hset(keys.digest_channels(), target.channel, DigestChannel(target=target, since=now()).model_dump_json())
    at = now() + timedelta(hours=rt.costs.digest_interval_hours)
    schedule(rt, "digest", target.channel, at, "channel_digest")
    return at


def digest_off(rt: runtime.Runtime, channel: str) -> None:
    rt.redis.hdel(keys.digest_channels(), channel)
    cancel(rt, "digest", channel)


def digest_text(rt: runtime.Runtime, channel: str, *, since: datetime) -> str:
    """Endpoints running for the channel (hours, cost so far) and its jobs finished since the last digest."""
    at = now()
    lines = [f"*Cost digest* since {since:%Y-%m-%d %H:%M} UTC"]
    for key in rt.redis.scan_iter(match=keys.lease("*")):
        raw = rt.redis.get(key)
        if raw is None:
            continue
        held = Lease.model_validate_json(raw)
        try:
            deploy = rt.ledger.get(held.job_id)
        except JobNotFound:
            continue
        if deploy.reply_to is None or deploy.reply_to.channel != channel:
            continue
        running = (at - held.started_at).total_seconds() / 3600
        lines.append(f"• endpoint {held.endpoint}: running {running:.1f} h, ≈ {costs.money(held.cost_so_far(at))} so far")
    finished = [r for r in rt.ledger.recent(limit=DIGEST_JOBS) if r.reply_to is not None and r.reply_to.channel == channel
                and r.finished_at is not None and r.finished_at >= since]
    spent = sum(r.actual_usd or 0.0 for r in finished)
    lines.append(f"• {len(finished)} jobs finished ({', '.join(f'{r.id} {r.state}' for r in finished[:10])}"
                 f"{' …' if len(finished) > 10 else ''}), ≈ {costs.money(spent)}" if finished else "• no jobs finished")
    return "\n".join(lines)


def _channel_digest(rt: runtime.Runtime, channel: str) -> None:
    raw = rt.redis.hget(keys.digest_channels(), channel)
    if raw is None:
        return
    opted = DigestChannel.model_validate_json(raw)
    at = now()
    rt.redis.hset(keys.digest_channels(), channel, opted.model_copy(update={"since": at}).model_dump_json())
    schedule(rt, "digest", channel, at + timedelta(hours=rt.costs.digest_interval_hours), "channel_digest")
    rt.notifier.channel_post(opted.target, ChatMessage(text=digest_text(rt, channel, since=opted.since)))


ACTIONS: dict[str, Any] = {
    "approval_reminder": _approval_reminder,
    "approval_expired": _approval_expired,
    "endpoint_warning": _endpoint_warning,
    "endpoint_expired": _endpoint_expired,
    "endpoint_idle": _endpoint_idle,
    "channel_digest": _channel_digest,
}

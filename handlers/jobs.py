"""`jobs` and `status`: what the ledger says about work that was asked for."""

from __future__ import annotations

from handlers import policy
from handlers.errors import UserError
from handlers.policy import Action
from platforms.base import JobState
from workers.ledger import JobNotFound, JobRecord
from workers.notifier import JobEvent
from workers.queues import enqueue_job, withdraw_job
from workers.runtime import Runtime


def submit(rt: Runtime, record: JobRecord) -> JobRecord:
    """Record, then announce, then queue: the user never hears of a job the ledger lacks, and the
    worker finds the thread to answer in already set."""
    record = rt.ledger.create(record)
    record = rt.notify(record, JobEvent.QUEUED)
    enqueue_job(rt.queue, record.id, timeout=rt.job_timeout, retries=rt.job_retries)
    return record


def list_jobs(rt: Runtime, *, user: str | None = None, limit: int = 20) -> list[JobRecord]:
    return rt.ledger.recent(user=user, limit=limit)


def job_status(rt: Runtime, job_id: str) -> JobRecord:
    try:
        return rt.ledger.get(job_id.strip())
    except JobNotFound:
        raise UserError(f'there is no job "{job_id.strip()}"', hint="See `jobs` for the job ids") from None


def cancel_job(rt: Runtime, job_id: str, user: str, channel: str | None = None) -> JobRecord:
    """Cancel a job: a queued one never starts, a running one stops at its next step. Someone
    else's job only when the access policy allows `cancel_others`."""
    record = job_status(rt, job_id)
    if record.requester != user and not policy.current().allows(policy.actor(user, channel), Action.CANCEL_OTHERS):
        raise UserError(f"{record.id} was started by someone else ({policy.mention(record.requester)}), "
                        "so you cannot cancel it",
                        hint=f"Ask them to cancel it. {policy.current().who_grants()}")
    if record.state.final:
        raise UserError(f"{record.id} has already {record.state}", hint="Only queued or running jobs can be canceled")
    record, moved = rt.ledger.transition(record.id, JobState.CANCELED, message=f"canceled by {user}")
    if moved:
        withdraw_job(rt.queue, record.id)
        if record.external_id:
            rt.platform.cancel(record.external_id)
        record = rt.notify(record, JobEvent.CANCELED)
    return record

"""Submitting, approving, listing, showing and cancelling jobs: what the ledger says about work."""

from __future__ import annotations

from handlers import policy
from handlers.errors import UserError
from handlers.policy import Action
from platforms.base import JobState, is_gpu_compute
from workers.ledger import JobNotFound, JobRecord
from workers.notifier import JobEvent
from workers.queues import withdraw_job
from workers.runtime import Runtime


DEPLOYMENT_HOURS = 24.0


def gpu_hours(rt: Runtime, kind: str, compute: str | None, instances: int) -> float:
    """The most GPU instance-hours a request can spend: a job may run until its timeout, and an
    endpoint is priced per day it stays up."""
    if not is_gpu_compute(compute):
        return 0.0
    hours = DEPLOYMENT_HOURS if kind == "deploy" else rt.job_timeout / 3600
    return instances * hours


def submit(rt: Runtime, record: JobRecord, *, compute: str | None = None, instances: int = 1) -> JobRecord:
    """Record, announce and queue in one atomic write (`Runtime.create`): the user never hears of
    a job the ledger lacks, no recorded job misses its place in the queue, and the QUEUED notice is
    first in the job's outbox, so the worker's updates land in the thread it starts. Work above the
    approval threshold is recorded and announced with Approve/Reject buttons, and queued only once
    approved."""
    record.gpu_hours = gpu_hours(rt, record.kind, compute, instances)
    if rt.approval_gpu_hours and record.gpu_hours > rt.approval_gpu_hours:
        record.approval = "pending"
    return rt.create(record, enqueue=record.approval is None)


def approve_job(rt: Runtime, job_id: str, approver: str, channel: str | None = None) -> JobRecord:
    """An approver (policy action `approve`; not the requester, unless an admin) lets costly work run."""
    record = job_status(rt, job_id)
    rules = policy.current()
    rules.require(policy.actor(approver, channel), Action.APPROVE)
    if approver == record.requester and approver not in rules.admins:
        raise UserError("you cannot approve your own job", hint=f"Ask another approver. {rules.who_grants()}")
    if record.approval != "pending" or record.state.final:
        raise UserError(f"{record.id} is not waiting for approval", hint=f"It is {record.state}")

    def approve(stored: JobRecord) -> None:
        if stored.approval != "pending" or stored.state.final:
            raise UserError(f"{stored.id} is not waiting for approval", hint=f"It is {stored.state}")
        stored.approval, stored.approved_by = "approved", approver

    record = rt.ledger.update(record.id, approve, then=lambda pipe: rt.enqueue(record.id, pipeline=pipe))
    return rt.notify(record, JobEvent.APPROVED)


def reject_job(rt: Runtime, job_id: str, approver: str, channel: str | None = None) -> JobRecord:
    record = job_status(rt, job_id)
    policy.current().require(policy.actor(approver, channel), Action.APPROVE)
    if record.approval != "pending" or record.state.final:
        raise UserError(f"{record.id} is not waiting for approval", hint=f"It is {record.state}")
    record, moved = rt.ledger.transition(record.id, JobState.CANCELED, message=f"rejected by {approver}")
    return rt.notify(record, JobEvent.CANCELED) if moved else record


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

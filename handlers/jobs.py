"""Submitting, approving, listing, showing and cancelling jobs: what the ledger says about work."""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import BaseModel

from handlers import costs, limits, policy
from handlers.errors import UserError
from handlers.policy import Action
from platforms.base import DeploySpec, JobSpec, JobState
from workers.ledger import DataUse, JobKind, JobNotFound, JobRecord, ReplyTarget, new_job_id
from workers.notifier import FileAttachment, JobEvent
from workers import timers
from workers.costs import money
from workers.queues import withdraw_job
from workers.runtime import Runtime


DEPLOYMENT_HOURS = 24.0
UNKNOWN_GPUS = 8  # a compute whose size cannot be read is counted as the largest common GPU node


def gpu_hours(rt: Runtime, kind: str, compute: str | None, instances: int, *, serverless: bool = False) -> float:
    """The most GPU-hours a request can spend: GPUs per instance (from the compute's real size) ×
    instances × hours, a job until its timeout on every attempt RQ may make, an endpoint per day it
    stays up. A serverless deploy, or compute of unknown size, counts as UNKNOWN_GPUS per instance."""
    gpus = None if serverless else rt.platform.compute_gpus(compute)
    if gpus is None:
        gpus = UNKNOWN_GPUS
    if kind == "deploy":
        return gpus * instances * DEPLOYMENT_HOURS
    return gpus * instances * rt.job_timeout / 3600 * (1 + rt.job_retries)


class JobRequest(BaseModel):
    """A platform spec with who asks for it and where to answer: the spec is what the worker runs,
    the rest is the ledger's. Each command's request names its kind and narrows `spec`."""

    kind: ClassVar[JobKind]
    spec: JobSpec
    requester: str
    reply_to: ReplyTarget | None = None
    data: list[DataUse] = []


def submit(rt: Runtime, request: JobRequest) -> JobRecord:
    """Record, announce and queue in one atomic write (`Runtime.create`): the user never hears of
    a job the ledger lacks, no recorded job misses its place in the queue, and the QUEUED notice is
    first in the job's outbox, so the worker's updates land in the thread it starts. Work above an
    approval threshold (GPU-hours or money) or over a budget the policy sends for approval is recorded
    and announced with Approve/Reject buttons, and queued only once approved; the approval expires.
    The requester's and the channel's fair-use limits are checked first. Its estimate (from the rows
    of its data) goes on the record, and is charged to this month's spend."""
    spec = request.spec
    record = JobRecord(id=new_job_id(request.kind), kind=request.kind, model=spec.model, task=spec.task,
                       spec=spec.model_dump(mode="json"), requester=request.requester, reply_to=request.reply_to,
                       data=request.data)
    record.gpu_hours = gpu_hours(rt, record.kind, spec.compute, spec.instances,
                                 serverless=isinstance(spec, DeploySpec) and spec.serverless)
    rows = request.data[0].rows if request.data else 0  # the training data, or the test data evaluated
    record.estimate = costs.estimate_request(rt, record.kind, spec, rows=rows)
    actor = policy.actor(request.requester, request.reply_to.channel if request.reply_to else None)
    usd = record.estimate.usd_high if record.estimate else None
    reasons = []
    if rt.approval_gpu_hours and record.gpu_hours > rt.approval_gpu_hours:
        reasons.append(f"more than {rt.approval_gpu_hours:g} GPU-hours")
    if rt.costs.approval_usd and (usd is None or usd > rt.costs.approval_usd) and not (record.estimate and record.estimate.free):
        reasons.append(f"may cost more than {money(rt.costs.approval_usd)}" if usd is not None
                       else "its compute has no price to compare with the approval limit")
    if costs.check_budget(rt, actor, record.estimate):
        reasons.append(f"over budget: {costs.budget_problem(rt, actor, record.estimate)}")
    if reasons:
        record.approval, record.message = "pending", "Needs approval: " + "; ".join(reasons)
    limits.check_submit(rt, record)
    record = rt.create(record, enqueue=record.approval is None)
    costs.charge_request(rt, record.id, actor, record.estimate)
    if record.approval == "pending":
        timers.approval_waiting(rt, record)
    return record


def approve_job(rt: Runtime, job_id: str, approver: str, channel: str | None = None) -> JobRecord:
    """An approver (policy action `approve`; not the requester, unless an admin) lets costly work run."""
    record = job_status(rt, job_id)
    rules = policy.current()
    rules.require(policy.actor(approver, channel), Action.APPROVE)
    if approver == record.requester and approver not in rules.admins:
        raise UserError("you cannot approve your own job", hint=f"Ask another approver. {rules.who_grants()}")

    def approve(stored: JobRecord) -> None:
        """pending → approved, judged on the record as stored under WATCH, with the enqueue in the
        same transaction: of two clicks (or a retried delivery) exactly one finds it pending, so
        the job is queued and announced once."""
        if stored.approval != "pending" or stored.state.final:
            raise UserError(f"{stored.id} is not waiting for approval",
                            hint=f"It is {stored.state}" + (f", approved by {policy.mention(stored.approved_by)}"
                                                             if stored.approved_by else ""))
        stored.approval, stored.approved_by = "approved", approver

    record = rt.ledger.update(record.id, approve, then=lambda pipe: rt.enqueue(record.id, pipeline=pipe))
    timers.approval_decided(rt, record.id)
    return rt.notify(record, JobEvent.APPROVED)


def reject_job(rt: Runtime, job_id: str, approver: str, channel: str | None = None) -> JobRecord:
    record = job_status(rt, job_id)
    policy.current().require(policy.actor(approver, channel), Action.APPROVE)
    if record.approval != "pending" or record.state.final:
        raise UserError(f"{record.id} is not waiting for approval", hint=f"It is {record.state}")
    record, moved = rt.ledger.transition(record.id, JobState.CANCELED, message=f"rejected by {approver}")
    if not moved:
        return record
    timers.approval_decided(rt, record.id)
    return rt.notify(timers.settle(rt, record), JobEvent.CANCELED)


def list_jobs(rt: Runtime, *, user: str | None = None, limit: int = 20) -> list[JobRecord]:
    return rt.ledger.recent(user=user, limit=limit)


def job_status(rt: Runtime, job_id: str, viewer: str | None = None, channel: str | None = None) -> JobRecord:
    """The job's record. A chat `viewer` sees another person's job only in the channel the job
    reports to (where its thread already shows it), or as an admin or `cancel_others`; anyone
    else is told there is no such job, so error texts, file names and metrics of a job in a
    channel they are not in never reach them. The operator's CLI passes no viewer."""
    try:
        record = rt.ledger.get(job_id.strip())
    except JobNotFound:
        record = None
    if record is not None and (viewer is None or viewer == record.requester
                               or (channel is not None and record.reply_to is not None
                                   and record.reply_to.channel == channel)
                               or policy.current().allows(policy.actor(viewer, channel), Action.CANCEL_OTHERS)):
        return record
    raise UserError(f'there is no job "{job_id.strip()}" you can see here', hint="See `jobs` for your job ids")


PREDICTION_KEYS = ("input", "reference", "prediction")


def predictions_file(rt: Runtime, job_id: str, viewer: str, channel: str | None = None) -> FileAttachment:
    """A finished evaluation's scored test rows (the first ROW_LIMIT) as JSON Lines, for whoever may
    see the job (`job_status`): what a reviewer opens to see where the model went wrong."""
    record = job_status(rt, job_id, viewer, channel)
    if record.kind != "evaluate" or record.state != JobState.COMPLETED:
        raise UserError(f"{record.id} is not a completed evaluation",
                        hint="Predictions come with an evaluation once it has completed")
    if not record.rows:
        raise UserError(f"{record.id} kept no scored rows", hint="Run the evaluation again to get its predictions")
    lines = (json.dumps({key: row.get(key) for key in PREDICTION_KEYS}, ensure_ascii=False) + "\n"
             for row in record.rows)
    return FileAttachment(filename=f"{record.id}-predictions.jsonl", content="".join(lines).encode(),
                          title=f"Predictions of {record.model} on {len(record.rows)} test rows")


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
    record = _cancel(rt, record.id, f"canceled by {user}")
    for member in record.spec.get("members", []) if record.kind == "compare" else []:
        _cancel(rt, member, f"canceled with its comparison {record.id} by {user}")
    return record


def _cancel(rt: Runtime, job_id: str, message: str) -> JobRecord:
    """A queued job never starts, a running one stops at its next step; a final one is left as is.
    A comparison's finishing job is withdrawn before its members, so it does not run for them."""
    record, moved = rt.ledger.transition(job_id, JobState.CANCELED, message=message)
    if moved:
        withdraw_job(rt.queue, record.id)
        if record.external_id:
            rt.platform.cancel(record.external_id)
        timers.approval_decided(rt, record.id)
        record = rt.notify(timers.settle(rt, record), JobEvent.CANCELED)
    return record

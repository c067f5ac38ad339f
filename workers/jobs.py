"""RQ job functions: run a ledger job on the platform and tell the thread how it went.

Every state change is written to the ledger first and posted second. Mistakes in the user's
input (DatasetError, PlatformError) fail the job at once with their message; anything else is
re-raised so RQ's retry policy decides, and `on_job_failure` reports only the last attempt.

Remote jobs (Azure ML) come back RUNNING with an external id: it goes into the ledger at once, so
a retried delivery polls instead of submitting again, and `poll_job` then looks at the remote job
every `Runtime.poll_interval` seconds (FMBOT_POLL_INTERVAL) from RQ's scheduler, holding no worker in between.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import timedelta
from collections.abc import Callable
from typing import Any

from rq import get_current_job

from platforms.base import (
    DeploySpec,
    EvaluateSpec,
    FinetuneSpec,
    ImportSpec,
    JobCanceled,
    JobOutcome,
    JobState,
    Platform,
    PlatformError,
    Progress,
)
from platforms.datasets import DatasetError
from workers import compare, outbox, runtime, telemetry, timers
from workers.ledger import JobKind, JobRecord
from workers.notifier import JobEvent

log = logging.getLogger(__name__)
LEDGER_WRITE_INTERVAL = 1.0


class ProgressReporter:
    """Writes progress to the ledger (at most once a second) and posts it (at most every
    `progress_interval` seconds); raises JobCanceled once the ledger says the job was canceled."""

    def __init__(self, rt: runtime.Runtime, job_id: str):
        self.rt, self.job_id = rt, job_id
        self.last_write = 0.0
        self.last_post = time.monotonic()

    def __call__(self, progress: Progress) -> None:
        now = time.monotonic()
        done = progress.step >= progress.total
        if now - self.last_write < LEDGER_WRITE_INTERVAL and not done:
            return
        self.last_write = now

        def change(record: JobRecord) -> None:
            if not record.state.final:
                record.progress = progress

        record = self.rt.ledger.update(self.job_id, change)
        if record.state == JobState.CANCELED:
            raise JobCanceled(self.job_id)
        if now - self.last_post >= self.rt.progress_interval:
            self.last_post = now
            self.rt.notify(record, JobEvent.PROGRESS)


def _finish(rt: runtime.Runtime, job_id: str, state: JobState, event: JobEvent, **fields: Any) -> dict[str, Any]:
    """The final move, then what it cost: its actual duration and cost on the record and in the month's
    spend; a deployed endpoint's lease and time-to-live timers."""
    record, moved = rt.move(job_id, state, event, **fields)
    if moved:
        record = timers.settle(rt, record)
        if record.kind == "deploy" and state == JobState.COMPLETED:
            timers.endpoint_started(rt, record, host=socket.gethostname() if rt.platform.name == "local" else None)
    return record.public()


def _schedule_poll(rt: runtime.Runtime, job_id: str) -> dict[str, Any]:
    rt.queue.enqueue_in(timedelta(seconds=rt.poll_interval), "workers.jobs.poll_job", job_id,
                        job_timeout=600, result_ttl=3600, description=f"fmbot poll {job_id}")
    return rt.ledger.get(job_id).public()


def poll_job(job_id: str) -> dict[str, Any]:
    """Look once at a remote job and schedule the next look: hours of Azure training hold no worker.

    A failed look (Azure unreachable) is logged and tried again at the next interval; only a final
    state ends the chain, and a job canceled in the ledger stops it.
    """
    rt = runtime.current()
    record = rt.ledger.get(job_id)
    telemetry.bind_job(job_id, record.trace_id)
    if record.state.final or not record.external_id:
        return record.public()
    try:
        outcome = rt.platform.job_status(record.external_id)
    except Exception:
        log.exception("could not read remote job %s of %s; polling again later", record.external_id, job_id)
        return _schedule_poll(rt, job_id)
    if outcome.state == JobState.COMPLETED:
        return _finish(rt, job_id, JobState.COMPLETED, JobEvent.COMPLETED, metrics=outcome.metrics,
                       output_model=outcome.output_model, message=outcome.message, rows=outcome.rows,
                       result={**record.result, **outcome.result})
    if outcome.state == JobState.FAILED:
        return _finish(rt, job_id, JobState.FAILED, JobEvent.FAILED, error=outcome.message)
    if outcome.state == JobState.CANCELED:
        return _finish(rt, job_id, JobState.CANCELED, JobEvent.CANCELED, message=outcome.message)
    if outcome.message != record.message:
        rt.move(job_id, JobState.RUNNING, JobEvent.PROGRESS, message=outcome.message)
    return _schedule_poll(rt, job_id)


def _deploy(platform: Platform, spec: dict[str, Any], report: ProgressReporter) -> JobOutcome:
    """Deploying reports no progress: the endpoint is up, or the platform raised why not."""
    endpoint = platform.deploy(DeploySpec.model_validate(spec))
    return JobOutcome(state=JobState.COMPLETED, message=f"endpoint {endpoint.name} is {endpoint.state} at {endpoint.url}",
                      result={"endpoint": endpoint.name, "url": endpoint.url, "state": endpoint.state})


Runner = Callable[[Platform, dict[str, Any], ProgressReporter], JobOutcome]
RUNNERS: dict[JobKind, Runner] = {
    "finetune": lambda platform, spec, report: platform.run_finetune(FinetuneSpec.model_validate(spec), report),
    "evaluate": lambda platform, spec, report: platform.run_evaluation(EvaluateSpec.model_validate(spec), report),
    "deploy": _deploy,
    "import": lambda platform, spec, report: platform.import_model(ImportSpec.model_validate(spec), report),
}


def _attempt(rt: runtime.Runtime) -> int:
    """Which of RQ's attempts this run is: a job id queued twice runs as the same attempt (and so
    only once, whoever claims queued → running first), while RQ's retry after a crash is the next."""
    job = get_current_job()
    retries_left = (job.retries_left or 0) if job is not None else rt.job_retries
    return max(rt.job_retries - retries_left, 0) + 1


def run_job(job_id: str) -> dict[str, Any]:
    rt = runtime.current()
    record = rt.ledger.get(job_id)
    telemetry.bind_job(job_id, record.trace_id)
    if record.state.final:
        return record.public()
    if record.external_id:
        return _schedule_poll(rt, job_id)
    attempt = _attempt(rt)

    def startable(stored: JobRecord) -> bool:
        if stored.approval == "pending":
            return False  # only an Approve click queues it
        return stored.state == JobState.QUEUED or (stored.state == JobState.RUNNING and stored.attempts < attempt)

    record, started = rt.move(job_id, JobState.RUNNING, JobEvent.STARTED, when=startable, attempts=attempt)
    if not started:
        log.info("job %s is already %s (attempt %s); not running it again", job_id, record.state, record.attempts)
        return record.public()
    report = ProgressReporter(rt, job_id)
    try:
        runner = RUNNERS.get(record.kind)
        if runner is None:
            raise PlatformError(f"fmbot has no runner for {record.kind} jobs")
        outcome = runner(rt.platform, record.spec, report)
    except JobCanceled:
        return rt.ledger.get(job_id).public()
    except (DatasetError, PlatformError) as exc:
        return _finish(rt, job_id, JobState.FAILED, JobEvent.FAILED, error=str(exc))
    if not outcome.state.final and outcome.external_id:
        def remember(stored: JobRecord) -> None:
            stored.external_id, stored.message = outcome.external_id, outcome.message

        rt.ledger.update(job_id, remember)
        return _schedule_poll(rt, job_id)
    return _finish(
        rt, job_id, JobState.COMPLETED, JobEvent.COMPLETED,
        metrics=outcome.metrics,
        output_model=outcome.output_model,
        loss_history=outcome.loss_history,
        samples=outcome.samples,
        rows=outcome.rows,
        message=outcome.message,
        result=outcome.result,
        external_id=outcome.external_id,
    )


def finish_comparison(comparison_id: str) -> dict[str, Any]:
    """RQ job that RQ starts once every evaluation of a comparison has ended (`workers/compare.py`)."""
    rt = runtime.current()
    telemetry.bind_job(comparison_id, rt.ledger.get(comparison_id).trace_id)
    return compare.finish(rt, comparison_id)


def delete_endpoint(name: str) -> dict[str, Any]:
    """RQ job on a host's queue: stop and forget a local endpoint whose processes run on this host."""
    return runtime.current().platform.delete_endpoint(name).model_dump(mode="json", exclude={"key"})


def rotate_endpoint_key(name: str) -> dict[str, Any]:
    """RQ job on a host's queue: a new key for a local endpoint served on this host. The result
    (kept in Redis by RQ) carries no key: the new one waits in the endpoint's pickup slot."""
    return runtime.current().platform.rotate_endpoint_key(name).model_dump(mode="json", exclude={"key"})


def deliver_pending(job_id: str) -> bool:
    """RQ job on the outbox queue: a later attempt at a job's notifications."""
    rt = runtime.current()
    return outbox.drain(rt.redis, rt.notifier, job_id)


def on_job_failure(job: Any, connection: Any, exc_type: Any = None, exc_value: Any = None, tb: Any = None) -> None:
    """RQ's failure callback: a crash gets a retry notice while attempts remain, else a failure."""
    rt = runtime.current()
    job_id = job.id
    retrying = bool(job.retries_left)
    try:
        record = rt.ledger.get(job_id)
    except LookupError:
        return
    log.error("job %s attempt failed (trace %s): %s", job_id, record.trace_id, exc_value)
    if record.state.final:
        return
    if retrying:
        rt.notify(record, JobEvent.RETRYING)
        return
    _finish(
        rt, job_id, JobState.FAILED, JobEvent.FAILED,
        error=f"The job stopped unexpectedly ({exc_type.__name__ if exc_type else 'worker lost'}). "
              f"Try again; if it keeps failing, give the admins trace id {record.trace_id}",
    )

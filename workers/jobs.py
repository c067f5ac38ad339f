"""RQ job functions: run a ledger job on the platform and tell the thread how it went.

Every state change is written to the ledger first and posted second. Mistakes in the user's
input (DatasetError, PlatformError) fail the job at once with their message; anything else is
re-raised so RQ's retry policy decides, and `on_job_failure` reports only the last attempt.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from platforms.base import EvaluateSpec, FinetuneSpec, JobCanceled, JobState, PlatformError, Progress
from platforms.datasets import DatasetError
from workers import runtime
from workers.ledger import JobRecord
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
    record, moved = rt.ledger.transition(job_id, state, **fields)
    if moved:
        rt.notify(record, event)
    return record.public()


def run_job(job_id: str) -> dict[str, Any]:
    rt = runtime.current()
    record = rt.ledger.get(job_id)
    if record.state.final:
        return record.public()
    record, _ = rt.ledger.transition(job_id, JobState.RUNNING, attempts=record.attempts + 1)
    rt.notify(record, JobEvent.STARTED)
    report = ProgressReporter(rt, job_id)
    try:
        if record.kind == "finetune":
            outcome = rt.platform.run_finetune(FinetuneSpec.model_validate(record.spec), report)
        elif record.kind == "evaluate":
            outcome = rt.platform.run_evaluation(EvaluateSpec.model_validate(record.spec), report)
        else:
            raise PlatformError(f"fmbot has no runner for {record.kind} jobs")
    except JobCanceled:
        return rt.ledger.get(job_id).public()
    except (DatasetError, PlatformError) as exc:
        return _finish(rt, job_id, JobState.FAILED, JobEvent.FAILED, error=str(exc))
    return _finish(
        rt, job_id, JobState.COMPLETED, JobEvent.COMPLETED,
        metrics=outcome.metrics,
        output_model=outcome.output_model,
        loss_history=outcome.loss_history,
        samples=outcome.samples,
        message=outcome.message,
        external_id=outcome.external_id,
    )


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
    if retrying:
        rt.notify(record, JobEvent.RETRYING)
        return
    _finish(
        rt, job_id, JobState.FAILED, JobEvent.FAILED,
        error=f"The job stopped unexpectedly ({exc_type.__name__ if exc_type else 'worker lost'}). "
              f"Try again; if it keeps failing, give the admins trace id {record.trace_id}",
    )

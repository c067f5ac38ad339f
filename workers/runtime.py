"""What a job function needs at run time, installed once per worker process.

RQ calls plain functions with JSON arguments (ledger ids); the connections, the platform and the
notifier they use are built by `fmbot worker` from the settings and installed here before the
worker forks its work horses, which inherit them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import JobStatus

from platforms.base import JobState, Platform
from workers import outbox, storage, telemetry
from workers.costs import CostConfig
from workers.ledger import JobRecord, Ledger
from workers.notifier import JobEvent, Notifier
from workers.queues import enqueue_job, host_queue

log = logging.getLogger(__name__)
# Told of every posted change after its post (a comparison refreshing its member lines, a
# leaderboard entry): installed by whoever builds the Runtime, so this module imports none of them.
Observer = Callable[["Runtime", JobRecord, JobEvent], None]


@dataclass
class Runtime:
    redis: Redis
    ledger: Ledger
    queue: Queue
    notifier: Notifier
    platform_factory: Callable[[], Platform]
    progress_interval: float = 10.0
    job_timeout: int = 24 * 3600
    job_retries: int = 1
    approval_gpu_hours: float = 0.0
    ledger_retention_days: float = 90.0
    upload_retention_hours: float = 24.0
    poll_interval: float = 60.0
    costs: CostConfig = field(default_factory=CostConfig)
    observers: tuple[Observer, ...] = ()
    _platform: Platform | None = field(default=None, repr=False)

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = self.platform_factory()
        return self._platform

    def notify(self, record: JobRecord, event: JobEvent) -> JobRecord:
        """Post a change through the outbox: a chat outage delays the post (in order, never twice),
        and never fails the job itself."""
        return self._posted(lambda: outbox.post(self.redis, self.notifier, record, event), record, event)

    def move(self, job_id: str, state: JobState, event: JobEvent, *,
             when: Callable[[JobRecord], bool] | None = None, **fields: Any) -> tuple[JobRecord, bool]:
        """`Ledger.transition`, with the move's notice appended to the outbox in the same atomic
        write and posted after it as `notify` posts: the state is stored before anything is posted,
        and never stored without its notice."""
        notice = outbox.Notice(event)
        record, moved = self.ledger.transition(job_id, state, along=notice, when=when, **fields)
        if moved:
            record = self._posted(lambda: outbox.deliver(self.redis, self.notifier, notice), record, event)
        return record, moved

    def create(self, record: JobRecord, *, enqueue: bool) -> JobRecord:
        """`Ledger.create` with the QUEUED notice and, when `enqueue`, the RQ job, in one atomic
        write; the notice is posted after it as `notify` posts."""
        notice = outbox.Notice(JobEvent.QUEUED)
        storage.pin(self.redis, record.id, record.spec)
        queue_it = (lambda pipe: self.enqueue(record.id, pipeline=pipe)) if enqueue else None
        record = self.ledger.create(record, along=notice, then=queue_it)
        return self._posted(lambda: outbox.deliver(self.redis, self.notifier, notice), record, JobEvent.QUEUED)

    def run_on_host(self, host: str, function: str, *args: Any, wait: float) -> Any:
        """Run `function(*args)` as a job on `host`'s queue and wait up to `wait` seconds for its
        result: None when it has not finished by then (it still runs once a worker there takes it),
        RuntimeError with its error when it failed."""
        job = host_queue(self.redis, host).enqueue(function, *args, job_timeout=300, result_ttl=600, failure_ttl=600)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            status = job.get_status(refresh=True)
            if status == JobStatus.FINISHED:
                return job.return_value()
            if status == JobStatus.FAILED:
                result = job.latest_result()
                raise RuntimeError((result.exc_string or "").strip().splitlines()[-1] if result else "it failed")
            time.sleep(0.2)
        return None

    def enqueue(self, job_id: str, *, pipeline: Pipeline | None = None) -> None:
        enqueue_job(self.queue, job_id, timeout=self.job_timeout, retries=self.job_retries, pipeline=pipeline)

    def _posted(self, post: Callable[[], JobRecord], record: JobRecord, event: JobEvent) -> JobRecord:
        """Run `post`, logging instead of failing; the change is counted for operators after it,
        off the path to the user."""
        try:
            posted = post()
        except Exception:
            log.exception("could not post %s for job %s (trace %s)", event, record.id, record.trace_id)
            posted = record
        for observer in self.observers:
            try:
                observer(self, record, event)
            except Exception:
                log.exception("%s failed on %s of job %s", getattr(observer, "__qualname__", observer), event, record.id)
        # A comparison's evaluations share its test upload, and Re-run reads it again: theirs is left to
        # the retention sweep.
        if posted.state.final and posted.parent is None and posted.kind != "compare":
            self._release(posted)
        if event != JobEvent.PROGRESS:
            telemetry.record_job_state(self.redis, record.kind, event.value,
                                       seconds=record.elapsed_seconds if record.state.final else None)
        return posted


    def _release(self, record: JobRecord) -> None:
        """A finished job's uploaded datasets are deleted: nothing reads them any more (a retry
        is never coming once the state is final)."""
        try:
            storage.release(self.redis, record.spec)
        except Exception:
            log.exception("could not delete the uploads of job %s; the retention sweep will", record.id)


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no fmbot runtime installed: start workers with `fmbot worker`")
    return _current

"""What a job function needs at run time, installed once per worker process.

RQ calls plain functions with JSON arguments (ledger ids); the connections, the platform and the
notifier they use are built by `fmbot worker` from the settings and installed here before the
worker forks its work horses, which inherit them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue

from platforms.base import Platform
from workers import outbox, telemetry
from workers.ledger import JobRecord, Ledger
from workers.notifier import JobEvent, Notifier

log = logging.getLogger(__name__)


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
    poll_interval: float = 60.0
    _platform: Platform | None = field(default=None, repr=False)

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = self.platform_factory()
        return self._platform

    def notify(self, record: JobRecord, event: JobEvent) -> JobRecord:
        """Post a change through the outbox: a chat outage delays the post (in order, never twice),
        and never fails the job itself."""
        if event != JobEvent.PROGRESS:
            telemetry.record_job_state(self.redis, record.kind, event.value,
                                       seconds=record.elapsed_seconds if record.state.final else None)
        try:
            return outbox.post(self.redis, self.notifier, record, event)
        except Exception:
            log.exception("could not post %s for job %s (trace %s)", event, record.id, record.trace_id)
            return record


_current: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no fmbot runtime installed: start workers with `fmbot worker`")
    return _current

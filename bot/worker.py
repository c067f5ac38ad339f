"""`fmbot worker`: an RQ worker with fmbot's runtime installed and crash detection tuned.

RQ's defaults notice a dead worker's job only after ~13 minutes (worker TTL 420 s, maintenance
every 10 minutes); a short TTL and maintenance interval bring that under two minutes.
"""

from __future__ import annotations

from rq import Worker
from rq.serializers import JSONSerializer

from bot.settings import Settings
from workers import runtime
from workers.runtime import Runtime

WORKER_TTL_SECONDS = 35
MAINTENANCE_INTERVAL_SECONDS = 30


def run_worker(settings: Settings, rt: Runtime, *, burst: bool = False) -> int:
    runtime.install(rt)
    worker = Worker(
        [rt.queue],
        connection=rt.redis,
        serializer=JSONSerializer,
        worker_ttl=WORKER_TTL_SECONDS,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
        job_monitoring_interval=10,
    )
    worker.work(with_scheduler=True, burst=burst, logging_level=settings.fmbot_log_level.upper())
    return 0

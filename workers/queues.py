"""The RQ queue fmbot's jobs run on, always with the JSON serializer.

Job arguments are only ledger ids, so nothing a user sends is ever unpickled by a worker.
"""

from __future__ import annotations

import socket

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import ResponseError
from rq import Callback, Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

QUEUE_NAME = "fmbot"
OUTBOX_QUEUE_NAME = "fmbot-outbox"
RETRY_INTERVALS = (5, 30, 120)


def job_queue(redis: Redis, *, name: str = QUEUE_NAME) -> Queue:
    return Queue(name, connection=redis, serializer=JSONSerializer)


def host_queue(redis: Redis, host: str | None = None) -> Queue:
    """Work that must run on one host (stopping the processes of a local endpoint served there):
    every worker listens to its own host's queue too."""
    return job_queue(redis, name=f"{QUEUE_NAME}-host-{host or socket.gethostname()}")


def outbox_queue(redis: Redis) -> Queue:
    """Deliveries of notifications Slack refused; workers listen to it before the job queue."""
    return job_queue(redis, name=OUTBOX_QUEUE_NAME)


def persistence_warning(redis: Redis) -> str | None:
    """Why queued and running jobs would be lost if Redis restarted, or None when they would not."""
    try:
        appendonly = redis.config_get("appendonly").get("appendonly")
    except ResponseError:
        return None  # managed Redis hides CONFIG; its persistence is the provider's setting
    if appendonly == "yes":
        return None
    return ("Redis has no append-only file (appendonly no): queued, scheduled and running jobs will not survive "
            "a Redis restart. Start Redis with --appendonly yes --appendfsync everysec")


def enqueue_job(queue: Queue, job_id: str, *, timeout: int, retries: int, pipeline: Pipeline | None = None) -> None:
    """Enqueue the ledger job `job_id`; the RQ job shares its id so either can be found from the other.
    With `pipeline` (in MULTI), the job is queued when that transaction executes."""
    queue.enqueue_call(
        "workers.jobs.run_job",
        args=(job_id,),
        job_id=job_id,
        timeout=timeout,
        result_ttl=24 * 3600,
        failure_ttl=7 * 24 * 3600,
        # RQ picks interval[len - retries_left], so the list must be as long as `retries`.
        retry=Retry(max=retries, interval=list(RETRY_INTERVALS[:retries])) if retries else None,
        on_failure=Callback("workers.jobs.on_job_failure"),
        description=f"fmbot job {job_id}",
        pipeline=pipeline,
    )


def withdraw_job(queue: Queue, job_id: str) -> None:
    """Take a job off the queue if it has not started; a running job stops itself via the ledger.
    Its dependents (a comparison's finishing job) still run: they judge the ledger's record."""
    try:
        Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer).cancel(enqueue_dependents=True)
    except (NoSuchJobError, InvalidJobOperation):
        return

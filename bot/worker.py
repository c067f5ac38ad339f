"""`fmbot worker`: an RQ worker with fmbot's runtime installed, crash detection tuned, and an
optional supervisor that keeps N of them running.

RQ's defaults notice a dead worker's job only after ~13 minutes (worker TTL 420 s, maintenance
every 10 minutes). Here a job's execution entry expires 70 s after its last heartbeat (RQ adds 60 s
to the 10 s monitoring interval) and any live worker sweeps the started-job registry every 30 s, so
a job whose worker was SIGKILLed is retried or failed within ~100 s. A work horse killed under a
live worker is noticed at once; RQ runs no failure callback for it, so `work_horse_killed_handler`
reports it the same way. A work horse dies with its worker (`FmbotWorker`), so a retried job never
runs beside an orphan of its first attempt.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from rq import Worker
from rq.serializers import JSONSerializer

from bot import plots
from bot.settings import Settings
from bot.try_service import TryService
from platforms.local import LocalPlatform
from workers import holders, keys, runtime, storage
from workers.jobs import on_job_failure
from workers.queues import host_queue, outbox_queue, persistence_warning
from workers.runtime import Runtime

log = logging.getLogger(__name__)
WORKER_TTL_SECONDS = 35
MAINTENANCE_INTERVAL_SECONDS = 30
JOB_MONITORING_INTERVAL_SECONDS = 10
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)
STABLE_AFTER_SECONDS = 60
SWEEP_INTERVAL_SECONDS = 3600
PUBSUB_WAKE_SECONDS = 1.0


class WorkHorseKilled(Exception):
    """The process running a job died (SIGKILL, out of memory) while its worker lived on."""


def on_horse_killed(job: Any, retpid: int, ret_val: int, rusage: Any) -> None:
    on_job_failure(job, job.connection, WorkHorseKilled, WorkHorseKilled(f"work horse exit status {ret_val}"))


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when the thread that forked it dies


class FmbotWorker(Worker):
    """An RQ worker whose work horses die with it. A horse outliving a SIGKILLed worker would go on
    training as an orphan while the job, found abandoned, is retried on another worker: the same
    fine-tune twice, two final messages. Linux's parent-death signal kills the horse the moment its
    worker goes; where it is missing (not Linux), the horse lives on as before."""

    def main_work_horse(self, job: Any, queue: Any) -> None:
        die_with_parent(self.pid)
        super().main_work_horse(job, queue)

    def subscribe(self) -> None:
        """RQ's subscription to its command channel, with the listening thread waking every
        PUBSUB_WAKE_SECONDS rather than every 60. On shutdown RQ unsubscribes, then stops that
        thread, and redis-py's `stop()` waits for it; a thread that read the server's reply to the
        unsubscribe before the stop sleeps out its whole wait first (rq/rq#1613). `fmbot worker` then
        took a minute to exit on SIGTERM, one time in three on a loaded machine."""
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=PUBSUB_WAKE_SECONDS, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def run_maintenance_tasks(self) -> None:
        super().run_maintenance_tasks()
        sweep_ledger(runtime.current())
        sweep_storage(runtime.current())


def sweep_ledger(rt: Runtime) -> None:
    """Delete ledger records past their retention (FMBOT_LEDGER_RETENTION_DAYS): one worker at a
    time, at most once per SWEEP_INTERVAL_SECONDS however many workers run maintenance."""
    try:
        if not rt.redis.set(keys.ledger_sweep(), "1", nx=True, ex=SWEEP_INTERVAL_SECONDS):
            return
        cutoff = datetime.now(UTC) - timedelta(days=rt.ledger_retention_days)
        while (deleted := rt.ledger.sweep(cutoff)):
            log.info("deleted %d ledger records finished before %s", deleted, cutoff.date())
    except Exception:
        log.exception("could not sweep the ledger; trying again at a later maintenance")


def sweep_storage(rt: Runtime) -> None:
    """Delete uploads no job will read and stopped endpoints' logs, past FMBOT_UPLOAD_RETENTION_HOURS:
    one worker at a time, at most once per SWEEP_INTERVAL_SECONDS."""
    try:
        if not rt.redis.set(keys.storage_sweep(), "1", nx=True, ex=SWEEP_INTERVAL_SECONDS):
            return
        logs_dir, live = rt.platform.endpoint_logs() if isinstance(rt.platform, LocalPlatform) else (None, set())
        uploads, logs = storage.sweep(rt.redis, retention_hours=rt.upload_retention_hours, is_final=rt.ledger.ended,
                                      logs_dir=logs_dir, live_logs=live)
        if uploads or logs:
            log.info("deleted %d uploads and %d endpoint logs past their retention", uploads, logs)
    except Exception:
        log.exception("could not sweep uploads and endpoint logs; trying again at a later maintenance")


def die_with_parent(parent: int | None) -> None:
    """Ask for SIGKILL when the parent dies, and die at once if it already has (it may have died
    between the fork and this call, leaving the process orphaned already)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            log.warning("work horse cannot die with its worker: prctl failed (errno %d)", ctypes.get_errno())
            return
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def fork_beside(life: Callable[[], None], name: str) -> int:
    """Fork a child that lives `life` and dies with this process; returns its pid. Fork before this
    process starts any thread: a lock another thread holds would stay held in the child."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:
        die_with_parent(parent)
        life()
    except BaseException:
        log.exception("the %s stopped", name)
    finally:
        os._exit(1)


def start_beside_worker(settings: Settings) -> int | None:
    """Fork the warm try service (bot/try_service.py) from the worker, after the preload and before
    the worker starts any thread; returns its pid, or None when FMBOT_TRY_SERVICE is off."""
    if not settings.fmbot_try_service:
        return None

    def serve() -> None:
        from bot.bootstrap import build_platform

        TryService(Redis.from_url(settings.redis_url), build_platform(settings)).serve()

    return fork_beside(serve, "try service")


# What a work horse would otherwise import again in every job: the metric libraries each
# evaluation scores with (scikit-learn alone is ~1.1 s of CPU, more than a small evaluation's
# inference); matplotlib's pyplot (the charts a status message carries) is loaded after them.
PRELOADED_METRICS = ("sklearn.metrics", "sklearn.preprocessing", "seqeval.metrics", "rouge_score.rouge_scorer",
                     "sacrebleu.metrics")


def preload_local_platform(settings: Settings) -> None:
    """Import torch, transformers and the metric libraries once in the worker, before it forks a
    work horse per job: every job then inherits them instead of spending seconds of CPU importing
    them again."""
    if settings.fmbot_platform != "local":
        return
    try:
        import torch  # noqa: F401
        from transformers import AutoModel, AutoTokenizer, Trainer  # noqa: F401
    except ImportError:
        log.warning("torch/transformers are not installed: install fmbot[local] for the local platform")
        return
    for module in PRELOADED_METRICS:
        try:
            importlib.import_module(module)
        except ImportError:
            log.warning("%s is not installed: the jobs that use it will fail", module)
    plots.pyplot()


def run_worker(settings: Settings, rt: Runtime, *, burst: bool = False) -> int:
    runtime.install(rt)
    preload_local_platform(settings)
    try_service = start_beside_worker(settings)
    warning = persistence_warning(rt.redis)
    if warning:
        log.warning(warning)
    worker = FmbotWorker(
        [outbox_queue(rt.redis), host_queue(rt.redis), rt.queue],
        connection=rt.redis,
        serializer=JSONSerializer,
        worker_ttl=WORKER_TTL_SECONDS,
        maintenance_interval=MAINTENANCE_INTERVAL_SECONDS,
        job_monitoring_interval=JOB_MONITORING_INTERVAL_SECONDS,
        work_horse_killed_handler=on_horse_killed,
    )
    holders.install_worker(worker.name)
    try:
        worker.work(with_scheduler=True, burst=burst, logging_level=settings.fmbot_log_level.upper())
    finally:
        if try_service is not None:
            os.kill(try_service, signal.SIGKILL)
            os.waitpid(try_service, 0)
    return 0


def worker_env(processes: int) -> dict[str, str]:
    """The supervised workers' environment: torch's threads (OMP_NUM_THREADS, read once at import,
    inherited by every work horse) split the host's cores between the workers, so N busy workers
    keep N x threads = the cores busy instead of each starting one thread per core and all of them
    contending. An OMP_NUM_THREADS already set is kept."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    return env


def supervise(processes: int, *, command: list[str] | None = None) -> int:
    """Keep `processes` workers running: a worker that exits (Redis dropped, a crash) is started
    again after a short back-off; SIGTERM/SIGINT stop them all. This is what the container's
    entry point runs, so no process manager is needed around it."""
    command = command or [sys.executable, "-m", "bot.cli", "worker"]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    env = worker_env(processes)
    children: list[tuple[subprocess.Popen[bytes], float, int]] = [
        (subprocess.Popen(command, env=env), time.monotonic(), 0) for _ in range(processes)]
    log.info("supervising %d workers: %s", processes, ", ".join(str(p.pid) for p, _, _ in children))
    while not stopping:
        time.sleep(0.2)
        for index, (child, started, failures) in enumerate(children):
            status = child.poll()
            if status is None or stopping:
                continue
            failures = 0 if time.monotonic() - started > STABLE_AFTER_SECONDS else failures + 1
            delay = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS)) - 1] if failures else 0
            log.warning("worker %s exited with status %s; starting another in %ss", child.pid, status, delay)
            time.sleep(delay)
            replacement = subprocess.Popen(command, env=env)
            log.info("worker %s replaces %s", replacement.pid, child.pid)
            children[index] = (replacement, time.monotonic(), failures)
    for child, _, _ in children:
        if child.poll() is None:
            child.terminate()
    for child, _, _ in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    return 0

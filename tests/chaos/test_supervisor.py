"""`fmbot worker --processes N`: workers that die come back, including after Redis went away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Worker

from bot.redis_server import RedisServer
from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers.jobs import submit
from tests.helpers import final_record, ROOT, doomed_evaluation, settings_env, wait_until
from workers.ledger import JobRecord


def live_workers(redis: Redis) -> dict[str, int]:
    return {w.name: w.pid for w in Worker.all(connection=redis) if w.pid and os.path.exists(f"/proc/{w.pid}")}


def failing_evaluation(settings: Settings) -> JobRecord:
    """A job that reaches a final state within a second: its model does not exist."""
    rt = build_runtime(settings, slack=False)
    return submit(rt, doomed_evaluation(requester="U1", channel=None))


def test_supervisor_restarts_killed_workers_and_rides_out_a_redis_restart(settings: Settings, tmp_path: Path):
    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    settings = settings.replace(redis_url=server.url)
    redis = Redis.from_url(server.url)
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--processes", "2"],
                                  env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        first = wait_until(lambda: len(w := live_workers(redis)) == 2 and w, timeout=60)
        victim = next(iter(first.values()))
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced = wait_until(lambda: len(w := {n: p for n, p in live_workers(redis).items() if p != victim}) == 2
                              and w, timeout=60)
        restart_seconds = time.monotonic() - killed_at
        assert victim not in replaced.values()

        server.stop(kill=True)
        time.sleep(2)
        server.start()
        dropped_at = time.monotonic()
        record = failing_evaluation(settings)
        ledger = build_runtime(settings, slack=False).ledger
        final = final_record(ledger, record.id, timeout=120)
        assert final.state == "failed" and "no-such-model" in final.error
        recovery = time.monotonic() - dropped_at
        wait_until(lambda: len(live_workers(redis)) >= 2, timeout=60)
        print(f"\nchaos: worker kill → replacement registered in {restart_seconds:.1f}s; "
              f"Redis killed and restarted → next job final after {recovery:.1f}s")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        log.close()
        server.stop()
    assert supervisor.returncode == 0, (tmp_path / "supervisor.log").read_text()[-3000:]

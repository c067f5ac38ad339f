"""All the faults in one run: a work horse killed, a whole worker killed, Slack answering 429 and
503, Redis killed and restarted from its append-only file — while fine-tunes run under the worker
supervisor. Afterwards every job has ended exactly once and every thread got one final message."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from rq import Worker

from platforms.base import JobState
from tests.chaos.harness import final_replies, horse_of, kill, slack_runtime, submit_finetune
from tests.helpers import ROOT, settings_env, wait_until
from workers import outbox

JOBS = 4


def worker_running(rt, job_id: str) -> int | None:
    """The pid of the worker whose horse runs `job_id`, once its progress shows it under way."""
    record = rt.ledger.get(job_id)
    if record.state != "running" or not record.progress or record.progress.step < 1:
        return None
    for worker in Worker.all(connection=rt.redis):
        if worker.get_current_job_id() == job_id:
            return worker.pid
    return None


@pytest.mark.chaos
def test_every_job_ends_once_through_every_fault(slack_settings, slack, aof_redis, tiny_model, tmp_path):
    settings = slack_settings.replace(redis_url=aof_redis.url, fmbot_job_retries=2)
    rt = slack_runtime(settings)
    log = (tmp_path / "workers.log").open("wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--processes", "2"],
                                  env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    faults: list[str] = []
    try:
        records = [submit_finetune(rt, tiny_model, epochs=2) for _ in range(JOBS)]
        started = time.monotonic()

        first = records[0].id
        worker = wait_until(lambda: worker_running(rt, first), timeout=240)
        kill(horse_of(worker))
        faults.append("work horse SIGKILL")

        second = wait_until(lambda: next((r.id for r in records[1:] if worker_running(rt, r.id)), None), timeout=240)
        doomed = worker_running(rt, second)
        horse = horse_of(doomed)
        kill(doomed)
        if horse:
            kill(horse)
        faults.append("worker SIGKILL")

        slack.fail_next(*([503] * 20 + [429] * 4))
        faults.append("Slack 429/503 x24")
        time.sleep(1.5)
        aof_redis.stop(kill=True)
        time.sleep(2)
        aof_redis.start()
        faults.append("Redis SIGKILL + restart (AOF)")
        last_fault = time.monotonic()

        ids = [r.id for r in records]
        wait_until(lambda: all(rt.ledger.get(i).state.final for i in ids), timeout=600, interval=1)
        wait_until(lambda: all(not outbox.pending(rt.redis, i) for i in ids), timeout=120, interval=1)
        finished = time.monotonic()
        finals = [rt.ledger.get(i) for i in ids]
        assert [r.state for r in finals] == [JobState.COMPLETED] * JOBS, \
            [(r.id, r.state, r.error) for r in finals]
        slack.wait_for(lambda: len(final_replies(slack)) == JOBS, timeout=30)
        time.sleep(1)
        assert sorted(final_replies(slack).values()) == [1] * JOBS
        status_posts = [c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]
        assert len(status_posts) == JOBS
        retried = sum(r.attempts - 1 for r in finals)
        print(f"\nchaos: {JOBS} jobs; faults: {', '.join(faults)}; {retried} retried attempts; "
              f"{len([c for c in slack.calls if '!' in c.method])} Slack calls refused; all completed once, "
              f"{finished - last_fault:.0f}s after the last fault ({finished - started:.0f}s in all)")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        log.close()

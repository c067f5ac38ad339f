"""Redis restarted (killed, even) with an append-only file: queued, scheduled and running jobs
survive and each reaches its end exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from redis import Redis
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from platforms.base import JobState
from tests.chaos.harness import final_replies, slack_runtime, submit_finetune, wait_running
from tests.helpers import ROOT, settings_env, wait_until
from workers.ledger import JobRecord, new_job_id
from workers.queues import job_queue

FSYNC_WAIT_SECONDS = 1.5  # appendfsync everysec: at most the last second is at risk


def scheduled_job(rt, model: str) -> JobRecord:
    """A job due later, as a retry is: ledger record plus an RQ job in the scheduled registry."""
    record = rt.ledger.create(JobRecord(id=new_job_id("evaluate"), kind="evaluate", model=model,
                                        task="text-classification", requester="U0USER", spec={}))
    rt.queue.enqueue_in(timedelta(seconds=30), "workers.jobs.run_job", record.id, job_id=record.id)
    return record


def test_queued_and_scheduled_jobs_survive_a_killed_redis(slack_settings, slack, aof_redis, tiny_model):
    settings = slack_settings.replace(redis_url=aof_redis.url)
    rt = slack_runtime(settings)
    queued = submit_finetune(rt, tiny_model, epochs=1)
    later = scheduled_job(rt, tiny_model)
    time.sleep(FSYNC_WAIT_SECONDS)
    aof_redis.stop(kill=True)
    aof_redis.start()
    redis = Redis.from_url(aof_redis.url)
    assert job_queue(redis).job_ids == [queued.id]
    assert ScheduledJobRegistry(queue=job_queue(redis)).get_job_ids() == [later.id]
    assert rt.ledger.get(queued.id).reply_to.thread_ts, "the thread to answer in is kept too"
    assert rt.ledger.get(later.id).state == JobState.QUEUED


@pytest.mark.chaos
def test_running_job_survives_redis_killed_mid_run(slack_settings, slack, aof_redis, tiny_model, tmp_path):
    settings = slack_settings.replace(redis_url=aof_redis.url, fmbot_job_retries=1)
    rt = slack_runtime(settings)
    log = (tmp_path / "workers.log").open("wb")
    supervisor = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--processes", "1"],
                                  env=settings_env(settings), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        running = submit_finetune(rt, tiny_model, epochs=4)
        queued = submit_finetune(rt, tiny_model, epochs=1)
        wait_running(rt, running.id)
        assert StartedJobRegistry(queue=rt.queue).get_job_ids() == [running.id]
        time.sleep(FSYNC_WAIT_SECONDS)
        aof_redis.stop(kill=True)
        down_at = time.monotonic()
        time.sleep(2)
        aof_redis.start()
        ids = [running.id, queued.id]
        finals = wait_until(lambda: all(rt.ledger.get(i).state.final for i in ids) and
                            [rt.ledger.get(i) for i in ids], timeout=400, interval=1)
        recovered = time.monotonic() - down_at
        assert [r.state for r in finals] == [JobState.COMPLETED, JobState.COMPLETED], \
            (tmp_path / "workers.log").read_text()[-4000:]
        slack.wait_for(lambda: len(final_replies(slack)) == 2, timeout=30)
        time.sleep(1)
        assert sorted(final_replies(slack).values()) == [1, 1]
        print(f"\nchaos: 2 jobs, Redis killed once mid-run; both completed {recovered:.1f}s after the kill "
              f"(attempts {[r.attempts for r in finals]})")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
        log.close()

"""Nothing held by the dead: an outbox lock whose holder died is taken over at once, and a work
horse dies with its worker instead of training on as an orphan beside the job's retry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq import Worker

from platforms.base import JobState
from tests.chaos.harness import (final_replies, horse_of, kill, slack_runtime, submit_finetune,
                                 training_on_one_worker, wait_running)
from tests.helpers import final_record, ROOT, settings_env, wait_until
from workers import holders, keys, outbox
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.notifier import JobEvent
from workers.queues import outbox_queue

TAKE_LOCK = """
import sys, time
from redis import Redis
from workers import holders, keys
Redis.from_url(sys.argv[1]).set(keys.outbox_lock(sys.argv[2]), holders.me().model_dump_json(), nx=True, ex=300)
print("held", flush=True)
time.sleep(600)
"""


def a_job(rt) -> JobRecord:
    return rt.ledger.create(JobRecord(id=new_job_id("evaluate"), kind="evaluate", model="m", task="text-classification",
                                      requester="U0USER", spec={}, reply_to=ReplyTarget(channel="C0CHAN")))


def holder_process(settings, job_id: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", TAKE_LOCK, settings.redis_url, job_id], cwd=ROOT,
                               env=settings_env(settings), stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def alive(pid: int) -> bool:
    """A process that still runs (a zombie has stopped running; only its parent's wait is missing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_a_dead_holders_outbox_lock_is_taken_over_at_once(slack_settings, slack, redis):
    rt = slack_runtime(slack_settings)
    record = a_job(rt)
    holder = holder_process(slack_settings, record.id)
    kill(holder.pid)
    holder.wait()
    outbox.post(rt.redis, rt.notifier, record, JobEvent.QUEUED)
    assert len(slack.of("chat.postMessage")) == 1, "the notice went out now, not after the lock's 300 s"
    assert outbox.pending(redis, record.id) == [] and not redis.exists(keys.outbox_lock(record.id))


def test_a_live_holders_outbox_lock_is_left_alone(slack_settings, slack, redis):
    rt = slack_runtime(slack_settings)
    record = a_job(rt)
    holder = holder_process(slack_settings, record.id)
    try:
        held = redis.get(keys.outbox_lock(record.id))
        outbox.post(rt.redis, rt.notifier, record, JobEvent.QUEUED)
        assert slack.of("chat.postMessage") == [], "the holder delivers it, or a later attempt does"
        assert redis.get(keys.outbox_lock(record.id)) == held
        assert len(outbox.pending(redis, record.id)) == 1 and outbox_queue(redis).scheduled_job_registry.count == 1
    finally:
        kill(holder.pid)
        holder.wait()


def test_a_holder_on_another_host_is_dead_once_its_rq_worker_is(redis):
    live = Worker(["fmbot"], connection=redis, name="live-worker")
    live.register_birth()
    elsewhere = {"token": "t", "host": "another-host", "pid": os.getpid(), "started": "1"}
    assert not holders.is_dead(redis, holders.Holder(**elsewhere, worker="live-worker"))
    assert holders.is_dead(redis, holders.Holder(**elsewhere, worker="gone-worker"))
    assert not holders.is_dead(redis, holders.Holder(**elsewhere)), "unknown is taken for alive"
    live.register_death()
    assert holders.is_dead(redis, holders.Holder(**elsewhere, worker="live-worker"))


def test_horse_killed_mid_delivery_is_told_failed_at_once(slack_settings, slack, tiny_model, start_worker):
    """The horse dies inside a Slack call, holding the job's outbox lock: the failure notice does
    not wait out the lock."""
    rt = slack_runtime(slack_settings)
    worker = start_worker(slack_settings)
    record = submit_finetune(rt, tiny_model, epochs=20)
    wait_running(rt, record.id)
    updates = len(slack.of("chat.update"))
    release = slack.hold("chat.update")
    try:
        wait_until(lambda: len(slack.of("chat.update")) > updates, timeout=30)
        assert holders.parse(rt.redis.get(keys.outbox_lock(record.id))), "the horse holds the lock mid-call"
        kill(horse_of(worker.process.pid))
        killed_at = time.monotonic()
        final = final_record(rt.ledger, record.id, timeout=30)
    finally:
        release.set()
        slack.held.clear()
    assert final.state == JobState.FAILED
    slack.wait_for(lambda: final_replies(slack), timeout=15)
    told = time.monotonic() - killed_at
    assert told < 15, f"told after {told:.1f}s"
    assert list(final_replies(slack).values()) == [1]
    print(f"\nchaos: horse killed mid-delivery; failure told {told:.1f}s after the kill")


def test_work_horse_dies_with_its_worker(slack_settings, slack, tiny_model, start_worker):
    rt = slack_runtime(slack_settings)
    worker = start_worker(slack_settings)
    record = submit_finetune(rt, tiny_model, epochs=20)
    wait_running(rt, record.id)
    horse = horse_of(worker.process.pid)
    assert horse, worker.output()
    kill(worker.process.pid)
    killed_at = time.monotonic()
    try:
        wait_until(lambda: not alive(horse), timeout=5, interval=0.1)
    except AssertionError:
        os.kill(horse, signal.SIGKILL)
        raise AssertionError("the work horse outlived its SIGKILLed worker by 5 s") from None
    print(f"\nchaos: worker killed; its horse was gone {time.monotonic() - killed_at:.2f}s later")


@pytest.mark.chaos
def test_killed_worker_job_is_retried_once_and_trains_once(slack_settings, slack, tiny_model, start_worker):
    """Only the worker is killed (not its horse): the retry is the only run of the job."""
    settings = slack_settings.replace(fmbot_job_retries=1)
    rt, doomed, record = training_on_one_worker(settings, start_worker, tiny_model, epochs=4)
    horse = horse_of(doomed.process.pid)
    kill(doomed.process.pid)
    wait_until(lambda: not alive(horse), timeout=5, interval=0.1)
    step_at_kill = rt.ledger.get(record.id).progress.step
    time.sleep(3)
    assert rt.ledger.get(record.id).progress.step == step_at_kill, "nobody trains the job after the kill"
    survivor = start_worker(settings)
    final = final_record(rt.ledger, record.id, timeout=300)
    assert final.state == JobState.COMPLETED and final.attempts == 2, survivor.output()[-3000:]
    slack.wait_for(lambda: final_replies(slack), timeout=15)
    time.sleep(1)
    assert list(final_replies(slack).values()) == [1]

"""A worker or its work horse SIGKILLed mid-job: the job is noticed, retried or failed, and the
thread is told exactly once how it ended."""

from __future__ import annotations

import time

import pytest

from platforms.base import JobState
from tests.chaos.harness import (final_replies, horse_of, kill, slack_runtime, submit_finetune,
                                 training_on_one_worker, wait_running)
from tests.helpers import final_record, wait_until
from tests.slack_standin import SlackStandIn


def thread_texts(slack: SlackStandIn) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postMessage") if c.params.get("thread_ts")]


def test_killed_work_horse_without_retries_fails_the_job_and_says_so(slack_settings, slack, tiny_model,
                                                                    start_worker):
    rt = slack_runtime(slack_settings)
    worker = start_worker(slack_settings)
    record = submit_finetune(rt, tiny_model, epochs=20)
    wait_running(rt, record.id)
    horse = horse_of(worker.process.pid)
    assert horse, worker.output()
    killed_at = time.monotonic()
    kill(horse)
    try:
        final = final_record(rt.ledger, record.id, timeout=30)
    except AssertionError:
        raise AssertionError(worker.output()[-4000:]) from None
    noticed = time.monotonic() - killed_at
    assert final.state == JobState.FAILED and "stopped unexpectedly (WorkHorseKilled)" in final.error
    slack.wait_for(lambda: final_replies(slack), timeout=15)
    time.sleep(0.5)
    assert list(final_replies(slack).values()) == [1]
    assert not any("retrying" in t for t in thread_texts(slack))
    assert worker.process.poll() is None, "the worker itself lives on"
    print(f"\nchaos: 1 job, 1 horse kill, failed and told after {noticed:.1f}s")


@pytest.mark.chaos
def test_killed_work_horse_is_retried_and_completes(slack_settings, slack, tiny_model, start_worker):
    settings = slack_settings.replace(fmbot_job_retries=1)
    rt, worker, record = training_on_one_worker(settings, start_worker, tiny_model, epochs=4)
    kill(horse_of(worker.process.pid))
    killed_at = time.monotonic()
    wait_until(lambda: rt.ledger.get(record.id).attempts == 2, timeout=60)
    recovered = time.monotonic() - killed_at
    final = final_record(rt.ledger, record.id, timeout=240)
    assert final.state == JobState.COMPLETED, worker.output()[-3000:]
    slack.wait_for(lambda: final_replies(slack), timeout=15)
    assert list(final_replies(slack).values()) == [1]
    assert sum("retrying" in t for t in thread_texts(slack)) == 1
    assert not any("failed:" in t for t in thread_texts(slack))
    print(f"\nchaos: 1 job, 1 horse kill, retry started {recovered:.1f}s after the kill, completed")


@pytest.mark.chaos
def test_killed_worker_is_detected_as_abandoned_and_retried(slack_settings, slack, tiny_model, start_worker):
    """The whole worker dies with its horse: nobody runs a failure callback, so RQ's started-job
    registry must notice the expired execution; a second worker's maintenance sweeps it."""
    settings = slack_settings.replace(fmbot_job_retries=1)
    rt, doomed, record = training_on_one_worker(settings, start_worker, tiny_model, epochs=4)
    horse = horse_of(doomed.process.pid)
    kill(doomed.process.pid)
    kill(horse)
    killed_at = time.monotonic()
    survivor = start_worker(settings)
    wait_until(lambda: rt.ledger.get(record.id).attempts == 2, timeout=180, interval=1)
    detected = time.monotonic() - killed_at
    assert detected < 120, "abandoned jobs are found within two minutes"
    final = final_record(rt.ledger, record.id, timeout=240)
    assert final.state == JobState.COMPLETED, survivor.output()[-3000:]
    slack.wait_for(lambda: final_replies(slack), timeout=15)
    assert list(final_replies(slack).values()) == [1]
    assert sum("retrying" in t for t in thread_texts(slack)) == 1
    print(f"\nchaos: 1 job, 1 worker kill, detected as abandoned and restarted after {detected:.1f}s, completed")

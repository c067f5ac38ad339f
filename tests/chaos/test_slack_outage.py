"""Slack answering 429 and 503 for a while: every job still ends once, and every thread gets its
final message exactly once, in order after the ones before it."""

from __future__ import annotations

import time

from bot.settings import Settings
from handlers.jobs import submit
from tests.chaos.harness import final_replies, slack_runtime
from tests.helpers import doomed_evaluation, wait_until
from tests.slack_standin import SlackStandIn
from workers import outbox
from workers.ledger import JobRecord

JOBS = 5


def quick_job(rt) -> JobRecord:
    """An evaluation of a model that is not there: it fails within a second, so the outage, not
    the work, is what the test measures."""
    return submit(rt, doomed_evaluation())


def test_jobs_end_once_and_threads_hear_once_through_429s_and_503s(slack_settings: Settings, slack: SlackStandIn,
                                                                   start_worker):
    rt = slack_runtime(slack_settings)
    slack.fail_next(*([503] * 24 + [429] * 4))
    started = time.monotonic()
    records = [quick_job(rt) for _ in range(JOBS)]
    worker = start_worker(slack_settings)
    wait_until(lambda: all(rt.ledger.get(r.id).state.final for r in records), timeout=60)
    wait_until(lambda: all(not outbox.pending(rt.redis, r.id) for r in records), timeout=90, interval=0.5)
    recovered = time.monotonic() - started
    assert not slack.failures, "the outage really happened"
    finals = final_replies(slack)
    threads = {rt.ledger.get(r.id).reply_to.thread_ts for r in records}
    assert len(threads) == JOBS and set(finals) == threads, worker.output()[-3000:]
    assert list(finals.values()) == [1] * JOBS
    status_posts = [c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(status_posts) == JOBS, "one status message per job, never a second one"
    for thread in threads:
        replies = [c.params["text"] for c in slack.of("chat.postMessage") if c.params.get("thread_ts") == thread]
        assert replies[0].startswith("Started") and "failed:" in replies[-1], replies
    refused = len([c for c in slack.calls if "!" in c.method])
    print(f"\nchaos: {JOBS} jobs, {refused} Slack calls refused (429/503); all threads complete "
          f"{recovered:.1f}s after the outage began")

"""Slack's chat.postMessage limit (one message per second per channel, short bursts; 429 with
Retry-After over it, `tests.slack_standin.PostRateLimit`) played against the outbox: several jobs
notify the same channel at once, most posts are refused at first, and still every notice lands
exactly once, in its job's order, in its job's thread."""

from __future__ import annotations

import threading

from bot.bootstrap import build_runtime
from bot.settings import Settings
from platforms.base import JobState
from tests.slack_standin import PostRateLimit, SlackStandIn
from workers import outbox, runtime
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.notifier import JobEvent

JOBS = 3


def a_job(rt) -> JobRecord:
    return rt.ledger.create(JobRecord(
        id=new_job_id("evaluate"), kind="evaluate", model="no-such-model:1", task="text-classification",
        spec={}, requester="U1", reply_to=ReplyTarget(channel="C1")))


def life(rt, record: JobRecord) -> None:
    """A job's notices as its worker sends them: queued, started, failed, one after another."""
    rt.notify(record, JobEvent.QUEUED)
    record, _ = rt.ledger.transition(record.id, JobState.RUNNING)
    rt.notify(record, JobEvent.STARTED)
    record, _ = rt.ledger.transition(record.id, JobState.FAILED, error=f"boom {record.id}")
    rt.notify(record, JobEvent.FAILED)


def thread_of(slack: SlackStandIn, ts: str) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postMessage") if c.params.get("thread_ts") == ts]


def test_a_429_storm_in_one_channel_loses_nothing_and_keeps_each_thread_in_order(slack_settings: Settings,
                                                                                  slack: SlackStandIn):
    rt = build_runtime(slack_settings, slack=True)
    runtime.install(rt)
    calm = a_job(rt)
    life(rt, calm)
    expected = thread_of(slack, rt.ledger.get(calm.id).reply_to.thread_ts)

    slack.post_limit = PostRateLimit(per_second=4.0, burst=1)
    records = [a_job(rt) for _ in range(JOBS)]
    threads = [threading.Thread(target=life, args=(rt, r)) for r in records]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for _ in range(20):  # the scheduled deliveries (workers.jobs.deliver_pending), one after another
        if all(outbox.drain(rt.redis, rt.notifier, r.id) for r in records):
            break
    assert any(c.method == "chat.postMessage!429" for c in slack.calls), "the storm was not played"
    assert all(outbox.pending(rt.redis, r.id) == [] for r in records), "a notice is still waiting"
    status_posts = [c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(status_posts) == JOBS + 1, "one status message per job"
    for record in records:
        replies = thread_of(slack, rt.ledger.get(record.id).reply_to.thread_ts)
        assert [r.replace(record.id, calm.id) for r in replies] == expected, \
            f"{record.id}: {replies} (in order, once each, as the calm job's {expected})"

"""Nothing lost. A job is recorded and queued together or not at all: a Redis that refuses RQ's
writes (here an ACL user that may write only fmbot's keys, which fails the enqueue after the ledger
accepted the record) leaves no job "queued" with nothing in the queue, and no approval without its
queued job. A Slack delivery whose listener crashed is not dropped when Slack retries it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError
from redis import Redis
from redis.exceptions import RedisError

from bot.bootstrap import build_runtime
from bot.slack.client import web_client
from bot.slack.notifier import SlackNotifier
from bot.slack.views.jobs import SlackJobRenderer
from handlers import policy
from handlers.jobs import approve_job, submit
from tests.bot_server import BotServer
from tests.helpers import doomed_evaluation
from tests.slack_standin import SlackSender
from platforms.base import JobState
from workers import keys, outbox
from workers.idempotency import LEASE_SECONDS, Lease
from workers.ledger import JobRecord, ReplyTarget, new_job_id
from workers.notifier import JobEvent
from workers.queues import job_queue, outbox_queue

LEDGER_ONLY = "fmbot-ledger-only"


@pytest.fixture
def ledger_only_url(redis: Redis, redis_server) -> Iterator[str]:
    """A Redis user that may touch fmbot:* keys but none of RQ's rq:* keys."""
    redis.acl_setuser(LEDGER_ONLY, enabled=True, reset=True, passwords=["+pw"], keys=["fmbot:*"], commands=["+@all"])
    yield f"redis://{LEDGER_ONLY}:pw@127.0.0.1:{redis_server.port}/0"
    redis.acl_deluser(LEDGER_ONLY)


def test_a_submit_whose_enqueue_fails_records_nothing(settings, redis, ledger_only_url):
    rt = build_runtime(settings.replace(redis_url=ledger_only_url), slack=False)
    with pytest.raises(RedisError):
        submit(rt, doomed_evaluation())
    assert redis.zcard(keys.jobs()) == 0 and not redis.keys(keys.job("*")) and not redis.keys(keys.outbox("*")), \
        "no job sits queued that no worker will ever take"


def test_a_submit_records_announces_and_queues_together(settings, redis):
    rt = build_runtime(settings, slack=False)
    record = submit(rt, doomed_evaluation())
    assert rt.ledger.get(record.id).state == "queued"
    assert job_queue(redis).job_ids == [record.id]


def test_an_approval_whose_enqueue_fails_stays_pending(settings, redis, ledger_only_url):
    rt = build_runtime(settings.replace(fmbot_approval_gpu_hours=1.0), slack=False)
    before = policy.current()
    policy.install(policy.Policy(admins=["U0BOSS"]))
    try:
        record = submit(rt, doomed_evaluation(compute="Standard_NC6s_v3", instances=4))
        assert record.approval == "pending" and job_queue(redis).job_ids == []
        broken = build_runtime(settings.replace(redis_url=ledger_only_url, fmbot_approval_gpu_hours=1.0), slack=False)
        with pytest.raises(RedisError):
            approve_job(broken, record.id, "U0BOSS")
        assert rt.ledger.get(record.id).approval == "pending", "still waiting, so it can be approved again"
        approve_job(rt, record.id, "U0BOSS")
        assert rt.ledger.get(record.id).approval == "approved" and job_queue(redis).job_ids == [record.id]
    finally:
        policy.install(before)


def event_delivery(event_id: str) -> str:
    return json.dumps({"token": "x", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
                       "event_id": event_id, "event_time": int(time.time()),
                       "event": {"type": "reaction_added", "user": "U0USER", "reaction": "eyes",
                                 "item": {"type": "message", "channel": "C0CHAN", "ts": "1.1"}}})


def test_a_delivery_whose_listener_crashed_runs_on_slacks_retry(slack_settings, slack):
    """The listener raises on the first delivery (any bug in an ack path); Slack's retry of the same
    event must run it again, and a retry of a delivery that went through must not."""
    runs: list[str] = []

    def crash_once(event: dict) -> None:
        runs.append(event["reaction"])
        if len(runs) == 1:
            raise RuntimeError("a listener bug")

    bot = BotServer(slack_settings, extend=lambda app: app.event("reaction_added")(crash_once))
    try:
        sender, headers = SlackSender(bot.url), {"Content-Type": "application/json"}
        sender.post(event_delivery("Ev1"), headers=headers)
        assert runs == ["eyes"]
        sender.post(event_delivery("Ev1"), headers={**headers, "X-Slack-Retry-Num": "1",
                                                    "X-Slack-Retry-Reason": "http_error"})
        assert runs == ["eyes", "eyes"], "Slack's retry ran the listener again"
        sender.post(event_delivery("Ev1"), headers={**headers, "X-Slack-Retry-Num": "2",
                                                    "X-Slack-Retry-Reason": "http_timeout"})
        assert runs == ["eyes", "eyes"], "a delivery that went through runs once"
        assert bot.runtime.redis.ttl(keys.idempotency("event:Ev1")) > LEASE_SECONDS
    finally:
        bot.close()


def test_a_delivery_claim_held_by_a_dead_handler_lapses_before_slacks_next_retry(redis):
    """A process that died mid-handler never settles its lease: it lapses within LEASE_SECONDS,
    before Slack's retry a minute later."""
    lease = Lease(redis, "event:Ev2")
    assert lease.take() and not Lease(redis, "event:Ev2").take()
    assert 0 < redis.ttl(keys.idempotency("event:Ev2")) <= LEASE_SECONDS < 60


class RendererWithABug(SlackJobRenderer):
    """fmbot's renderer with a bug in one reply, as a real rendering bug would be."""

    def thread_reply(self, record: JobRecord, event: JobEvent):
        if event == JobEvent.STARTED:
            raise KeyError("samples")
        return super().thread_reply(record, event)


def a_job_in(rt) -> JobRecord:
    return rt.ledger.create(JobRecord(id=new_job_id("evaluate"), kind="evaluate", model="m", task="text-classification",
                                      requester="U0USER", spec={}, reply_to=ReplyTarget(channel="C0CHAN")))


def failed_replies(slack) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postMessage") if c.params.get("thread_ts")
            and "failed:" in c.params.get("text", "")]


def test_a_rendering_bug_is_logged_once_and_holds_nothing_up(slack_settings, slack, redis, caplog):
    rt = build_runtime(slack_settings, slack=True)
    notifier = SlackNotifier(web_client(slack_settings), RendererWithABug(), rt.ledger)
    record = a_job_in(rt)
    outbox.post(redis, notifier, record, JobEvent.STARTED)
    failed, _ = rt.ledger.transition(record.id, JobState.FAILED, error="out of memory")
    outbox.post(redis, notifier, failed, JobEvent.FAILED)
    assert len(failed_replies(slack)) == 1, "the later message went out at once"
    assert outbox.pending(redis, record.id) == [] and outbox_queue(redis).scheduled_job_registry.count == 0
    assert sum("dropped started notice" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("fault", ["azure", "slack"])
def test_a_failing_app_home_update_is_skipped(slack_settings, slack, redis, fault):
    def home(user: str) -> dict:
        if fault == "azure":
            raise HttpResponseError(message="(ServiceUnavailable) The service is temporarily unavailable")
        return {"type": "home", "blocks": []}

    if fault == "slack":
        slack.fail_next_of("views.publish", 503, 503, 503, 503)
    rt = build_runtime(slack_settings, slack=True)
    notifier = SlackNotifier(web_client(slack_settings), SlackJobRenderer(), rt.ledger, home=home)
    record = a_job_in(rt)
    failed, _ = rt.ledger.transition(record.id, JobState.FAILED, error="out of memory")
    outbox.post(redis, notifier, failed, JobEvent.FAILED)
    assert len(failed_replies(slack)) == 1
    assert outbox.pending(redis, record.id) == [] and outbox_queue(redis).scheduled_job_registry.count == 0
    assert [c.method for c in slack.calls if c.method.startswith("views.publish")] == \
        ([] if fault == "azure" else ["views.publish!503"] * 4)

"""Nothing lost. A job is recorded and queued together or not at all: a Redis that refuses RQ's
writes (here an ACL user that may write only fmbot's keys, which fails the enqueue after the ledger
accepted the record) leaves no job "queued" with nothing in the queue, and no approval without its
queued job. A Slack delivery whose listener crashed is not dropped when Slack retries it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from redis.exceptions import RedisError

from bot.bootstrap import build_runtime
from handlers import policy
from handlers.jobs import approve_job, submit
from tests.bot_server import BotServer
from tests.slack_standin import SlackSender
from workers import keys
from workers.idempotency import LEASE_SECONDS, Lease
from workers.ledger import JobRecord, new_job_id
from workers.queues import job_queue

LEDGER_ONLY = "fmbot-ledger-only"


@pytest.fixture
def ledger_only_url(redis: Redis, redis_server) -> Iterator[str]:
    """A Redis user that may touch fmbot:* keys but none of RQ's rq:* keys."""
    redis.acl_setuser(LEDGER_ONLY, enabled=True, reset=True, passwords=["+pw"], keys=["fmbot:*"], commands=["+@all"])
    yield f"redis://{LEDGER_ONLY}:pw@127.0.0.1:{redis_server.port}/0"
    redis.acl_deluser(LEDGER_ONLY)


def a_job() -> JobRecord:
    return JobRecord(id=new_job_id("evaluate"), kind="evaluate", model="m", task="text-classification",
                     requester="U0USER", spec={})


def test_a_submit_whose_enqueue_fails_records_nothing(settings, redis, ledger_only_url):
    rt = build_runtime(settings.replace(redis_url=ledger_only_url), slack=False)
    record = a_job()
    with pytest.raises(RedisError):
        submit(rt, record)
    assert not redis.exists(keys.job(record.id)), "no job sits queued that no worker will ever take"
    assert redis.zcard(keys.jobs()) == 0 and not redis.exists(keys.outbox(record.id))


def test_a_submit_records_announces_and_queues_together(settings, redis):
    rt = build_runtime(settings, slack=False)
    record = submit(rt, a_job())
    assert rt.ledger.get(record.id).state == "queued"
    assert job_queue(redis).job_ids == [record.id]


def test_an_approval_whose_enqueue_fails_stays_pending(settings, redis, ledger_only_url):
    rt = build_runtime(settings.replace(fmbot_approval_gpu_hours=1.0), slack=False)
    before = policy.current()
    policy.install(policy.Policy(admins=["U0BOSS"]))
    try:
        record = submit(rt, a_job(), compute="Standard_NC6s_v3", instances=4)
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

"""Nothing lost, nothing doubled: idempotent deliveries, JSON payloads, ledger before notify, the
outbox, and the start-up warning about Redis without persistence. Real Redis, real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

from redis import Redis

from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers.jobs import submit
from platforms.base import JobState
from tests.helpers import DATA, ROOT, doomed_evaluation, fmbot, settings_env, wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from tests.test_e2e_slack import compute_values, walk_to_compute_step
from workers import jobs, outbox, runtime
from workers.idempotency import claim
from workers.ledger import JobRecord, Ledger, ReplyTarget, new_job_id
from workers.notifier import JobEvent
from workers.queues import job_queue
from workers.runtime import Runtime


def test_claim_is_once_per_key_until_it_expires(redis: Redis):
    assert claim(redis, "k1", ttl=1) is True
    assert claim(redis, "k1", ttl=1) is False
    assert claim(redis, "k2", ttl=1) is True
    time.sleep(1.1)
    assert claim(redis, "k1", ttl=1) is True


def test_retried_command_opens_one_form(bot, slack: SlackStandIn, tiny_model):
    sender = SlackSender(bot.url)
    body = urllib.parse.urlencode({
        "token": "legacy", "team_id": "T0001", "channel_id": "C0CHAN", "user_id": "U0USER", "command": "/fm",
        "text": "finetune", "api_app_id": "A0001", "response_url": sender.response_url, "trigger_id": "trig.42",
    })
    assert sender.post(body).status_code == 200
    retried = sender.post(body, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    assert retried.status_code == 200
    slack.wait_for(lambda: slack.of("views.open"), timeout=10)
    time.sleep(0.5)
    assert len(slack.of("views.open")) == 1


def test_same_submission_twice_starts_one_job(bot, slack: SlackStandIn, slack_settings, tiny_model):
    sender = SlackSender(bot.url)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)
    first = sender.view_submission(compute_view, compute_values())
    second = sender.view_submission(compute_view, compute_values())
    assert first.status_code == second.status_code == 200
    assert "just submitted" in json.dumps(second.json()), "the repeat is answered, not dropped silently"
    slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if "thread_ts" not in c.params], 10)
    time.sleep(1.0)
    records = Ledger(bot.runtime.redis).recent()
    assert len(records) == 1
    assert job_queue(bot.runtime.redis).count == 1
    assert len([c for c in slack.of("chat.postMessage") if "thread_ts" not in c.params]) == 1


class LedgerWitness:
    """A notifier that writes down what the ledger said at the moment each post was made."""

    def __init__(self, ledger: Ledger):
        self.ledger, self.seen = ledger, []

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        stored = self.ledger.get(record.id)
        self.seen.append((event, stored.state))
        return stored


def witness_runtime(settings: Settings) -> tuple[Runtime, LedgerWitness]:
    rt = build_runtime(settings, slack=False)
    witness = LedgerWitness(rt.ledger)
    rt.notifier = witness
    return rt, witness


def a_record(model: str = "no-such-model:1") -> JobRecord:
    return JobRecord(id=new_job_id("evaluate"), kind="evaluate", model=model, task="text-classification",
                     spec={"model": model, "task": "text-classification", "mapping": {},
                           "test": {"path": "/nowhere.jsonl", "name": "t.jsonl"}},
                     requester="U1", reply_to=ReplyTarget(channel="C1"))


def test_payload_in_redis_is_json_not_pickle(settings: Settings, redis: Redis):
    rt, _ = witness_runtime(settings)
    record = submit(rt, doomed_evaluation(requester="U1", channel="C1"))
    data = zlib.decompress(redis.hget(f"rq:job:{record.id}", "data"))  # RQ stores it compressed
    assert not data.startswith(b"\x80"), "a pickle starts with the protocol byte 0x80"
    func, _, args, kwargs = json.loads(data)
    assert func == "workers.jobs.run_job" and args == [record.id]


def test_ledger_is_written_before_each_post(settings: Settings):
    rt, witness = witness_runtime(settings)
    runtime.install(rt)
    record = submit(rt, doomed_evaluation(requester="U1", channel="C1"))
    jobs.run_job(record.id)
    assert witness.seen == [(JobEvent.QUEUED, JobState.QUEUED), (JobEvent.STARTED, JobState.RUNNING),
                            (JobEvent.FAILED, JobState.FAILED)]
    assert "no-such-model" in rt.ledger.get(record.id).error


def test_ledger_writes_never_lose_a_change_made_elsewhere(redis: Redis):
    """Each Ledger writes against the record as it last saw it; one that is behind must pick up
    the other's change, and must not move a job that was canceled meanwhile."""
    worker, bot = Ledger(redis), Ledger(redis)
    record = worker.create(a_record())
    worker.transition(record.id, JobState.RUNNING)

    def remember_thread(stored: JobRecord) -> None:
        stored.reply_to = ReplyTarget(channel="C1", thread_ts="1700000000.000100")

    bot.update(record.id, remember_thread)
    running, _ = worker.transition(record.id, JobState.RUNNING, message="step 2")
    assert running.reply_to.thread_ts == "1700000000.000100" and running.message == "step 2"
    bot.transition(record.id, JobState.CANCELED, message="canceled by U1")
    final, did_move = worker.transition(record.id, JobState.COMPLETED, metrics={"accuracy": 1.0})
    assert not did_move and final.state == JobState.CANCELED and final.metrics == {}
    assert Ledger(redis).get(record.id).reply_to.thread_ts == "1700000000.000100"


def test_failure_callback_announces_retry_not_failure_while_retries_remain(settings: Settings):
    rt, witness = witness_runtime(settings)
    runtime.install(rt)
    record = submit(rt, doomed_evaluation(requester="U1", channel="C1"))

    class Attempt:
        id, retries_left = record.id, 1

    jobs.on_job_failure(Attempt, rt.redis)
    assert witness.seen[-1] == (JobEvent.RETRYING, JobState.QUEUED)
    Attempt.retries_left = 0
    jobs.on_job_failure(Attempt, rt.redis)
    assert witness.seen[-1] == (JobEvent.FAILED, JobState.FAILED)


def slack_runtime(slack_settings: Settings) -> Runtime:
    rt = build_runtime(slack_settings, slack=True)
    runtime.install(rt)
    return rt


def thread_texts(slack: SlackStandIn) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postMessage") if c.params.get("thread_ts")]


def test_outbox_keeps_posts_through_an_outage_and_delivers_in_order_once(slack_settings: Settings,
                                                                         slack: SlackStandIn):
    rt = slack_runtime(slack_settings)
    record = rt.ledger.create(a_record())
    slack.fail_next(*[503] * 12)  # each notify tries the head once: 1 call + slack_sdk's 3 retries
    rt.notify(record, JobEvent.QUEUED)
    assert [e.event for e in outbox.pending(rt.redis, record.id)] == [JobEvent.QUEUED]
    record, _ = rt.ledger.transition(record.id, JobState.RUNNING)
    rt.notify(record, JobEvent.STARTED)
    record, _ = rt.ledger.transition(record.id, JobState.FAILED, error="boom")
    rt.notify(record, JobEvent.FAILED)
    assert [e.event for e in outbox.pending(rt.redis, record.id)] == [JobEvent.QUEUED, JobEvent.STARTED,
                                                                     JobEvent.FAILED]
    assert not slack.of("chat.postMessage")
    scheduled = rt.redis.zcard(f"rq:scheduled:{outbox.outbox_queue(rt.redis).name}")
    assert scheduled >= 1, "a later delivery is scheduled"

    assert jobs.deliver_pending(record.id) is True
    assert outbox.pending(rt.redis, record.id) == []
    status_posts = [c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(status_posts) == 1
    replies = thread_texts(slack)
    assert len(replies) == len(set(replies)) and any("boom" in r for r in replies)
    stored = rt.ledger.get(record.id)
    assert stored.reply_to.thread_ts == slack.of("chat.update")[-1].params["ts"]


def test_outbox_resumes_a_half_delivered_notice_without_reposting(slack_settings: Settings, slack: SlackStandIn):
    rt = slack_runtime(slack_settings)
    record = rt.ledger.create(a_record())
    record, _ = rt.ledger.transition(record.id, JobState.FAILED, error="bad data")
    slack.fail_next_of("chat.postMessage", 0, 429, 429, 429, 429)  # status posted, the reply refused
    rt.notify(record, JobEvent.FAILED)
    pending = outbox.pending(rt.redis, record.id)
    assert len(pending) == 1 and pending[0].done == 1
    assert jobs.deliver_pending(record.id) is True
    assert len(slack.of("views.publish")) == 1
    assert len([c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]) == 1
    assert len([t for t in thread_texts(slack) if "bad data" in t]) == 1


def test_a_drainer_that_died_holding_the_lock_delays_but_loses_nothing(slack_settings: Settings,
                                                                      slack: SlackStandIn):
    from workers import keys

    rt = slack_runtime(slack_settings)
    record = rt.ledger.create(a_record())
    rt.redis.set(keys.outbox_lock(record.id), "a killed work horse", ex=2)
    rt.notify(record, JobEvent.QUEUED)
    assert [e.event for e in outbox.pending(rt.redis, record.id)] == [JobEvent.QUEUED]
    assert rt.redis.zcard(f"rq:scheduled:{outbox.outbox_queue(rt.redis).name}") == 1, "a later attempt is due"
    time.sleep(2.1)
    assert jobs.deliver_pending(record.id) is True
    assert len([c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]) == 1


def test_a_notice_slack_refuses_for_good_is_dropped_not_retried_forever(slack_settings: Settings,
                                                                         slack: SlackStandIn):
    """A revoked token gets `invalid_auth` with HTTP 200: retrying cannot help, so the notice is
    logged and dropped instead of blocking the job's later notices for an hour."""
    rt = slack_runtime(slack_settings)
    record = rt.ledger.create(a_record())
    real = rt.notifier.client.token
    rt.notifier.client.token = "xoxb-revoked"
    rt.notify(record, JobEvent.QUEUED)
    rt.notifier.client.token = real
    assert outbox.pending(rt.redis, record.id) == []
    assert rt.redis.zcard(f"rq:scheduled:{outbox.outbox_queue(rt.redis).name}") == 0


def test_a_move_and_its_notice_are_stored_together(slack_settings: Settings, slack: SlackStandIn):
    """While Slack is down, a job's final state and the notice announcing it are both in Redis;
    a move that does not happen (the job already ended) queues nothing."""
    rt = slack_runtime(slack_settings)
    record = rt.ledger.create(a_record())
    slack.fail_next(*[503] * 4)  # the status call and slack_sdk's 3 retries
    record, moved = rt.move(record.id, JobState.FAILED, JobEvent.FAILED, error="bad data")
    assert moved and Ledger(rt.redis).get(record.id).state == JobState.FAILED
    pending = outbox.pending(rt.redis, record.id)
    assert [(e.event, e.record.state, e.done) for e in pending] == [(JobEvent.FAILED, JobState.FAILED, 0)]
    _, moved_again = rt.move(record.id, JobState.COMPLETED, JobEvent.COMPLETED)
    assert not moved_again and len(outbox.pending(rt.redis, record.id)) == 1
    assert jobs.deliver_pending(record.id) is True
    assert [t for t in thread_texts(slack) if "bad data" in t] and outbox.pending(rt.redis, record.id) == []


def test_a_reply_that_fails_to_render_never_reposts_the_status(slack_settings: Settings, slack: SlackStandIn):
    """The reply is rendered after the status message is posted; should rendering fail, that is our
    bug, not Slack's: the notice is dropped (retrying would fail the same way and hold up the job's
    later notices), and the status message (here the one that starts the thread) stays single."""
    rt = slack_runtime(slack_settings)
    renderer = rt.notifier.renderer

    class FlakyRenderer:
        broken = True

        def status_message(self, record: JobRecord):
            return renderer.status_message(record)

        def thread_reply(self, record: JobRecord, event: JobEvent):
            if self.broken:
                raise RuntimeError("renderer failed")
            return renderer.thread_reply(record, event)

        def attachments(self, record: JobRecord, event: JobEvent):
            return renderer.attachments(record, event)

    flaky = rt.notifier.renderer = FlakyRenderer()
    record = rt.ledger.create(a_record())
    rt.move(record.id, JobState.FAILED, JobEvent.FAILED, error="bad data")
    assert outbox.pending(rt.redis, record.id) == []
    assert rt.redis.zcard(f"rq:scheduled:{outbox.outbox_queue(rt.redis).name}") == 0
    flaky.broken = False
    rt.notify(rt.ledger.get(record.id), JobEvent.CANCELED)
    assert len([c for c in slack.of("chat.postMessage") if not c.params.get("thread_ts")]) == 1
    assert len([t for t in thread_texts(slack) if "bad data" in t]) == 0


def test_start_up_warns_when_redis_has_no_persistence(settings: Settings):
    done = fmbot(settings, "worker", "--burst", timeout=180)
    assert done.returncode == 0, done.stderr
    assert "will not survive a Redis restart" in done.stderr + done.stdout


def test_no_warning_with_append_only_file(tmp_path: Path, settings: Settings):
    from bot.redis_server import RedisServer

    server = RedisServer(tmp_path, appendonly=True)
    server.start()
    try:
        done = fmbot(settings.replace(redis_url=server.url), "worker", "--burst", timeout=180)
        assert done.returncode == 0, done.stderr
        assert "will not survive" not in done.stderr + done.stdout
    finally:
        server.stop()


def test_serve_warns_at_start_up_when_redis_has_no_persistence(slack_settings: Settings, slack: SlackStandIn,
                                                               tmp_path: Path):
    from bot.redis_server import free_port

    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        serve = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port",
                                  str(free_port())], env=settings_env(slack_settings), cwd=ROOT,
                                 stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: "will not survive a Redis restart" in log.read_text(), timeout=60)
        finally:
            serve.terminate()
            serve.wait(timeout=20)


def test_a_worker_stops_at_once_when_its_listener_read_the_unsubscribe_reply_before_the_stop(redis: Redis):
    """rq/rq#1613's race, forced: RQ's shutdown unsubscribes the worker's command channel, then stops
    the thread listening on it; here the thread surely reads the server's reply first."""
    from bot.worker import PUBSUB_WAKE_SECONDS, FmbotWorker

    worker = FmbotWorker(["fmbot"], connection=redis)
    worker.subscribe()
    unsubscribe = worker.pubsub.unsubscribe

    def unsubscribe_and_let_the_reply_be_read(*args: Any) -> None:
        unsubscribe(*args)
        time.sleep(0.5)

    worker.pubsub.unsubscribe = unsubscribe_and_let_the_reply_be_read
    stopping = threading.Thread(target=worker.unsubscribe, daemon=True)
    began = time.monotonic()
    stopping.start()
    stopping.join(10)
    took = time.monotonic() - began
    assert not stopping.is_alive(), "the worker waited out its listener's whole wait (60 s in RQ) to stop"
    assert took < 0.5 + PUBSUB_WAKE_SECONDS + 1, f"stopping took {took:.1f} s"

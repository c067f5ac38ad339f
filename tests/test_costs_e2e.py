"""Costs end to end: estimates in the forms before Submit, estimate and actual in the record, approvals
that expire and endpoints that end, over signed Slack HTTP with real Redis, a real worker and RQ's scheduler.

Durations are settings in hours, so these tests set them to seconds' worth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main as cli
from bot.slack.ids import ActionId, BlockId, CallbackId
from handlers.deploy import list_endpoints
from handlers.finetune import start_finetune
from tests.bot_server import BotServer
from tests.conftest import DATA
from tests.slack_standin import SlackSender, SlackStandIn
from tests.test_approval import request
from tests.test_e2e_slack import compute_values, walk_to_compute_step
from tests.tiny_models import add_tiny_bert
from tests.worker_process import settings_env
from workers import costs, keys
from workers.ledger import Ledger


def stop_endpoints(server: BotServer) -> None:
    """A test that failed half-way leaves no serving processes behind."""
    for endpoint in server.runtime.platform.list_endpoints():
        server.runtime.platform.delete_endpoint(endpoint.name)


def texts(slack: SlackStandIn) -> list[str]:
    return [c.params.get("text", "") for c in slack.of("chat.postMessage")]


def test_the_form_shows_the_estimate_before_start_and_the_record_keeps_estimate_and_actual(
        bot, slack: SlackStandIn, slack_settings, tiny_model, start_worker, capsys, monkeypatch):
    start_worker(slack_settings)
    sender = SlackSender(bot.url)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)
    estimate = next(b for b in compute_view["blocks"] if b.get("block_id") == BlockId.ESTIMATE)["text"]["text"]
    rows = sum(1 for _ in (DATA / "sst2_small_validation.jsonl").open())
    assert f"{rows:,} rows × 3 epochs" in estimate and "`cpu`: ≈" in estimate
    assert "the local platform costs nothing" in estimate and "default table" in estimate

    assert sender.view_submission(compute_view, compute_values(epochs="2")).text == ""
    ledger = Ledger(bot.runtime.redis)
    slack.wait_for(lambda: ledger.recent() and ledger.recent()[0].actual_seconds is not None, 180)
    record = ledger.recent()[0]
    assert record.state == "completed" and record.estimate is not None
    assert record.estimate.work == pytest.approx(rows * 2)  # rows × epochs at 128 tokens
    assert record.estimate.seconds_low < record.estimate.seconds_high
    assert record.actual_seconds > 0 and record.actual_usd == 0.0
    assert "estimate ≈" in json.dumps(slack.of("chat.update")[-1].params["blocks"], ensure_ascii=False)

    # The error of the estimate is in `fmbot jobs --json`, and the next estimate learns from this job.
    for name, value in settings_env(slack_settings).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert cli(["jobs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)[0]
    assert listed["estimate_error"] == pytest.approx(record.actual_seconds / record.estimate.seconds_mid - 1, abs=1e-3)
    assert listed["estimate"]["summary"].startswith("≈ ") and listed["actual_seconds"] == record.actual_seconds
    rates = costs.recorded_rates(bot.runtime.redis, record.estimate.throughput_key)
    # actual_seconds is kept to the hundredth; the rate was taken from the unrounded duration.
    assert rates == [pytest.approx(record.estimate.work / record.actual_seconds, rel=0.006 / record.actual_seconds)]
    again = start_finetune(bot.runtime, request("cpu"))
    assert "1 earlier job of tiny-bert on cpu" in again.estimate.basis


@pytest.fixture
def expiring_bot(slack_settings, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("allow:\n  finetune: {everyone: true}\n  approve: {users: [U0APPROVER]}\n")
    # The approval expires 9 s after it is asked for; approvers are reminded 4.5 s before that.
    settings = slack_settings.replace(fmbot_policy=policy, fmbot_approval_gpu_hours=4.0,
                                      fmbot_approval_expiry_hours=0.0025, fmbot_approval_reminder_hours=0.00125)
    texts_ = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    add_tiny_bert(Path(settings.fmbot_models_dir), texts_)
    server = BotServer(settings)
    yield server, settings
    server.close()


def test_an_approval_nobody_gives_reminds_once_then_rejects_the_job_with_a_notice(expiring_bot, slack: SlackStandIn,
                                                                                   start_worker):
    bot, settings = expiring_bot
    start_worker(settings)
    start_worker(settings)  # two workers, two schedulers: each timer still fires once
    ledger = Ledger(bot.runtime.redis)
    costly = start_finetune(bot.runtime, request("cuda"))
    assert costly.approval == "pending" and "more than 4 GPU-hours" in costly.message
    reminders = lambda: [t for t in texts(slack) if costly.id in t and "still waits for an approver" in t]  # noqa: E731
    slack.wait_for(reminders, 30)
    slack.wait_for(lambda: ledger.get(costly.id).state == "canceled", 30)
    assert ledger.get(costly.id).message == "rejected: nobody approved it within 0.0025 h"
    notice = lambda t: "was canceled (rejected: nobody approved it" in t  # noqa: E731
    slack.wait_for(lambda: [t for t in texts(slack) if notice(t)], 10)
    assert len(reminders()) == 1
    assert texts(slack).index(reminders()[0]) < next(i for i, t in enumerate(texts(slack)) if notice(t)), \
        "the reminder came after the rejection"
    assert bot.runtime.queue.scheduled_job_registry.get_job_ids() == []
    assert not bot.runtime.redis.keys(keys.timer("*", costly.id))
    assert costly.id not in bot.runtime.queue.job_ids, "an expired job was queued"


@pytest.fixture
def ttl_bot(slack_settings, tmp_path: Path):
    # Warned 10.8 s before the end; Keep adds 10.8 s.
    settings = slack_settings.replace(fmbot_ttl_warning_hours=0.003, fmbot_ttl_extension_hours=0.003)
    texts_ = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    add_tiny_bert(Path(settings.fmbot_models_dir), texts_)
    server = BotServer(settings)
    yield server, settings
    stop_endpoints(server)
    server.close()


def test_an_endpoint_warns_its_owner_can_be_kept_and_is_deleted_at_the_end_of_its_time_to_live(
        ttl_bot, slack: SlackStandIn, start_worker):
    bot, settings = ttl_bot
    start_worker(settings)
    rt, ledger = bot.runtime, Ledger(bot.runtime.redis)
    sender = SlackSender(bot.url)

    assert sender.command("deploy tiny-bert").status_code == 200
    view = slack.wait_for(lambda: slack.of("views.open"), 10)[0].params["view"]
    assert view["callback_id"] == CallbackId.DEPLOY
    ttl_block = next(b for b in view["blocks"] if b.get("block_id") == BlockId.TTL)
    assert ttl_block["element"]["initial_value"] == "8h"  # the policy's default for local endpoints
    estimate = next(b for b in view["blocks"] if b.get("block_id") == BlockId.ESTIMATE)["text"]["text"]
    assert "`cpu`: ≈ 8 h on cpu ×1; the local platform costs nothing" in estimate

    def values(name: str, ttl: str) -> dict:
        return {BlockId.DEPLOY_KIND: {ActionId.DEPLOY_KIND: {"type": "radio_buttons",
                                                             "selected_option": {"value": "managed"}}},
                BlockId.ENDPOINT_NAME: {ActionId.TEXT: {"type": "plain_text_input", "value": name}},
                BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select", "selected_option": {"value": "cpu"}}},
                BlockId.INSTANCES: {ActionId.NUMBER: {"type": "number_input", "value": "1"}},
                BlockId.TTL: {ActionId.TEXT: {"type": "plain_text_input", "value": ttl}}}

    bad = sender.view_submission(view, values("short-ep", "soon")).json()
    assert "is not a time to live" in bad["errors"][BlockId.TTL]
    never = sender.view_submission(view, values("short-ep", "never")).json()
    assert "never ends" in never["errors"][BlockId.TTL]
    # Deleting an endpoint cancels its timers.
    assert sender.view_submission(view, values("other-ep", "8h")).text == ""
    slack.wait_for(lambda: rt.redis.keys(keys.timer("*", "other-ep")), 120)  # set once the deploy completed
    sender.button(ActionId.DELETE_ENDPOINT, "other-ep")
    slack.wait_for(lambda: not rt.redis.exists(keys.lease("other-ep")), 30)
    assert not rt.redis.keys(keys.timer("*", "other-ep"))

    assert sender.view_submission(view, values("short-ep", "0.006h")).text == ""  # 21.6 s
    slack.wait_for(lambda: len([r for r in ledger.recent() if r.state == "completed"]) == 2, 120)
    deploy = next(r for r in ledger.recent() if r.spec["endpoint"] == "short-ep")
    assert deploy.spec["ttl_hours"] == 0.006

    warning = slack.wait_for(lambda: [c.params for c in slack.of("chat.postMessage")
                                      if "reaches the end of its time to live" in c.params.get("text", "")], 30)[0]
    assert warning["thread_ts"] == ledger.get(deploy.id).reply_to.thread_ts and "<@U0USER>" in warning["text"]
    buttons = [e for b in warning["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [(e["text"]["text"], e["action_id"]) for e in buttons] == [
        ("Keep 0.003 h more", ActionId.KEEP_ENDPOINT), ("Delete now", ActionId.DELETE_ENDPOINT)]
    before = json.loads(rt.redis.get(keys.lease("short-ep")))["expires_at"]
    sender.button(ActionId.KEEP_ENDPOINT, "short-ep", user="U0OTHER")
    refusal = slack.wait_for(lambda: [c for c in slack.of("chat.postEphemeral") if "someone else" in c.params["text"]], 10)
    assert refusal[0].params["user"] == "U0OTHER"
    sender.button(ActionId.KEEP_ENDPOINT, "short-ep")
    slack.wait_for(lambda: [c for c in slack.of("chat.postEphemeral") if "is kept until" in c.params["text"]], 10)
    assert json.loads(rt.redis.get(keys.lease("short-ep")))["expires_at"] > before

    slack.wait_for(lambda: [t for t in texts(slack) if "short-ep* reached the end of its time to live" in t], 60)
    assert [e.name for e in list_endpoints(rt)] == []
    assert not rt.redis.exists(keys.lease("short-ep")) and not rt.redis.keys(keys.timer("*", "short-ep"))
    assert len([t for t in texts(slack) if "reaches the end of its time to live" in t]) == 2  # once, and after Keep
    ended = ledger.get(deploy.id)
    assert ended.actual_seconds > 21.6 and ended.actual_usd == 0.0
    entry = costs.charged(rt.redis, deploy.id, when=costs.month(deploy.created_at))
    assert entry is not None and entry.actual and entry.usd == 0.0


@pytest.fixture
def idle_bot(slack_settings, tmp_path: Path):
    settings = slack_settings.replace(fmbot_idle_hours=0.002)  # 7.2 s without a request
    texts_ = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    add_tiny_bert(Path(settings.fmbot_models_dir), texts_)
    server = BotServer(settings)
    yield server, settings
    stop_endpoints(server)
    server.close()


def test_an_endpoint_nobody_calls_gets_its_owner_one_direct_message_with_delete(idle_bot, slack: SlackStandIn,
                                                                                start_worker):
    import requests

    from handlers.deploy import DeployRequest, endpoint_for_owner, start_deploy
    from platforms.base import DeploySpec
    from workers import timers
    from workers.ledger import ReplyTarget

    bot, settings = idle_bot
    start_worker(settings)
    rt, ledger = bot.runtime, Ledger(bot.runtime.redis)
    record = start_deploy(rt, DeployRequest(spec=DeploySpec(model="tiny-bert", endpoint="quiet-ep", compute="cpu"),
                                            requester="U0USER", reply_to=ReplyTarget(channel="C0CHAN")))
    slack.wait_for(lambda: ledger.get(record.id).state == "completed", 120)
    endpoint = endpoint_for_owner(rt, "quiet-ep", "U0USER")
    for text in ("great", "awful", "fine"):
        answer = requests.post(endpoint.url, json={"input_data": [text]}, timeout=30,
                               headers={"Authorization": f"Bearer {endpoint.key.get_secret_value()}"})
        assert answer.status_code == 200
    assert rt.platform.endpoint_activity("quiet-ep").requests == 3

    dms = lambda: [c.params for c in slack.of("chat.postMessage") if "no scoring request" in c.params.get("text", "")]  # noqa: E731
    dm = slack.wait_for(dms, 40)[0]
    assert dm["channel"].startswith("D") and "(3 in all)" in dm["text"] and "at no cost" in dm["text"]
    assert [e["action_id"] for b in dm["blocks"] if b["type"] == "actions" for e in b["elements"]] == [
        ActionId.DELETE_ENDPOINT]
    told = timers.lease(rt, "quiet-ep").idle_told_since
    assert told is not None
    # Between two looks the timer is briefly not pending (one firing ends, the next is scheduled).
    next_look = slack.wait_for(lambda: timers.pending(rt, "endpoint-idle", "quiet-ep"), 30).at
    slack.wait_for(lambda: (look := timers.pending(rt, "endpoint-idle", "quiet-ep")) is not None
                   and look.at > next_look, 30)
    assert len(dms()) == 1, "the same quiet stretch was told twice"
    sender = SlackSender(bot.url)
    sender.button(ActionId.DELETE_ENDPOINT, "quiet-ep")
    slack.wait_for(lambda: not rt.redis.exists(keys.lease("quiet-ep")), 30)
    assert not rt.redis.keys(keys.timer("*", "quiet-ep"))


def test_a_channel_that_opts_in_gets_its_cost_digest_until_it_opts_out(slack_settings, slack: SlackStandIn,
                                                                       start_worker, tmp_path: Path):
    from handlers.jobs import reject_job

    policy = tmp_path / "policy.yaml"
    policy.write_text("allow:\n  finetune: {everyone: true}\n  approve: {users: [U0APPROVER]}\n"
                      "costs: {budgets: {channels: {C0CHAN: 300}}}\n")
    settings = slack_settings.replace(fmbot_policy=policy, fmbot_approval_gpu_hours=4.0,
                                      fmbot_digest_interval_hours=0.002)  # 7.2 s
    add_tiny_bert(Path(settings.fmbot_models_dir), ["a", "b"])
    bot = BotServer(settings)
    try:
        start_worker(settings)
        sender = SlackSender(bot.url)
        assert "cost digest every 0.002 h" in sender.ask("costs digest on", slack)[0]["text"]
        rejected = start_finetune(bot.runtime, request("cuda"))
        reject_job(bot.runtime, rejected.id, "U0APPROVER", "C0CHAN")
        answer = sender.ask("costs", slack)[0]
        assert "*Costs in " in answer["text"] and "channel <#C0CHAN>" not in answer["text"]
        assert "• channel C0CHAN: $0.00 of $300" in answer["text"]
        assert "digest on" in sender.ask("costs digest maybe", slack)[0]["text"]
        digests = lambda: [c.params for c in slack.of("chat.postMessage") if "Cost digest" in c.params.get("text", "")]  # noqa: E731
        first = slack.wait_for(digests, 30)[0]
        assert first["channel"] == "C0CHAN" and f"1 jobs finished ({rejected.id} canceled)" in first["text"]
        second = slack.wait_for(lambda: digests()[1:], 30)[0]
        assert "no jobs finished" in second["text"], "a digest repeated what the one before it told"
        assert "no cost digest" in sender.ask("costs digest off", slack)[0]["text"]
        assert not bot.runtime.redis.keys(keys.timer("digest", "C0CHAN"))
    finally:
        bot.close()

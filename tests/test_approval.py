"""Costly work waits for an approver's click in the thread; the approver is checked against the policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.slack.ids import ActionId
from handlers.finetune import FinetuneRequest, start_finetune
from platforms.base import DataRef, FinetuneSpec, Hyperparameters
from platforms.datasets import SplitPlan
from platforms.tasks import Task
from tests.helpers import DATA
from tests.slack_standin import SlackSender, SlackStandIn
from tests.bot_server import BotServer
from tests.tiny_models import add_tiny_bert
from workers.ledger import Ledger, ReplyTarget


@pytest.fixture
def approval_bot(slack_settings, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("allow:\n  finetune: {everyone: true}\n  approve: {users: [U0APPROVER]}\n")
    settings = slack_settings.replace(fmbot_policy=policy, fmbot_approval_gpu_hours=4.0)
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    add_tiny_bert(Path(settings.fmbot_models_dir), texts)
    server = BotServer(settings)
    yield server, settings
    server.close()


def request(compute: str) -> FinetuneRequest:
    return FinetuneRequest(spec=FinetuneSpec(
        model="tiny-bert", task=Task.TEXT_CLASSIFICATION,
        train=DataRef(path=str(DATA / "sst2_small_validation.jsonl"), name="sst2.jsonl"),
        split=SplitPlan(validation=0, test=0.2), mapping={"sentence1": "input_string", "label": "label_string"},
        hyperparameters=Hyperparameters(epochs=1), compute=compute,
    ), requester="U0USER", reply_to=ReplyTarget(channel="C0CHAN"))





def test_costly_job_waits_for_an_allowed_approver(approval_bot, slack: SlackStandIn, start_worker):
    bot, settings = approval_bot
    start_worker(settings)
    rt, ledger = bot.runtime, Ledger(bot.runtime.redis)
    sender = SlackSender(bot.url)

    cheap = start_finetune(rt, request("cpu"))
    assert cheap.approval is None and cheap.gpu_hours == 0

    costly = start_finetune(rt, request("cuda"))
    assert costly.approval == "pending" and costly.gpu_hours == 24.0
    assert costly.id not in rt.queue.job_ids
    status = next(c.params for c in slack.of("chat.postMessage") if costly.id in c.params.get("text", ""))
    buttons = [e["text"]["text"] for b in status["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["Approve", "Reject"]
    assert "up to 24 GPU-hours" in json.dumps(status["blocks"])

    sender.button(ActionId.APPROVE_JOB, costly.id, user="U0USER")
    refusal = slack.wait_for(lambda: slack.of("chat.postEphemeral"), 10)[0].params
    assert refusal["user"] == "U0USER" and "not allowed to approve costly jobs" in refusal["text"]
    assert ledger.get(costly.id).approval == "pending"

    sender.button(ActionId.APPROVE_JOB, costly.id, user="U0APPROVER")
    slack.wait_for(lambda: ledger.get(costly.id).state == "completed", 120)
    assert ledger.get(costly.id).approved_by == "U0APPROVER"
    assert any("Approved by <@U0APPROVER>" in c.params.get("text", "") for c in slack.of("chat.postMessage"))
    slack.wait_for(lambda: ledger.get(cheap.id).state == "completed", 120)

    rejected = start_finetune(rt, request("cuda"))
    sender.button(ActionId.REJECT_JOB, rejected.id, user="U0APPROVER")
    slack.wait_for(lambda: ledger.get(rejected.id).state == "canceled", 10)
    assert ledger.get(rejected.id).message == "rejected by U0APPROVER"
    sender.button(ActionId.APPROVE_JOB, rejected.id, user="U0APPROVER")
    late = slack.wait_for(lambda: [c for c in slack.of("chat.postEphemeral") if "not waiting for approval"
                                   in c.params.get("text", "")], 10)
    assert late[0].params["user"] == "U0APPROVER"
    assert ledger.get(rejected.id).state == "canceled"

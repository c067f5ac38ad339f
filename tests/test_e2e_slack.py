"""End to end with real parts: signed HTTP to the bot, real Redis, an RQ worker process, the Slack stand-in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.runtime import build_runtime
from bot.server import make_server, wsgi_app
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import web_client
from bot.slack.ids import ActionId, BlockId
from tests.conftest import DATA
from tests.slack_standin import SlackSender, SlackStandIn
from tests.tiny_models import add_tiny_bert
from workers.ledger import Ledger


class BotServer:
    def __init__(self, settings: Settings):
        self.runtime = build_runtime(settings)
        app = create_app(settings, self.runtime, web_client(settings))
        self.server = make_server(wsgi_app(app), "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}/slack/events"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def bot(slack_settings: Settings) -> Iterator[BotServer]:
    server = BotServer(slack_settings)
    yield server
    server.close()


@pytest.fixture
def tiny_model(slack_settings: Settings) -> str:
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    return add_tiny_bert(Path(slack_settings.fmbot_models_dir), texts).ref


def submit_values(model: str, file: dict, mapping: str = "", test_split: str = "20") -> dict:
    return {
        BlockId.MODEL: {ActionId.MODEL: {"type": "static_select", "selected_option": {"value": model}}},
        BlockId.TASK: {ActionId.TASK: {"type": "static_select", "selected_option": {"value": "text-classification"}}},
        BlockId.TRAIN_FILE: {ActionId.TRAIN_FILE: {"type": "file_input", "files": [file]}},
        BlockId.MAPPING: {ActionId.MAPPING: {"type": "plain_text_input", "value": mapping or None}},
        BlockId.VALIDATION_SPLIT: {ActionId.VALIDATION_SPLIT: {"type": "number_input", "value": "0"}},
        BlockId.TEST_SPLIT: {ActionId.TEST_SPLIT: {"type": "number_input", "value": test_split}},
        BlockId.EPOCHS: {ActionId.EPOCHS: {"type": "number_input", "value": "2"}},
    }


def test_finetune_from_slack_posts_metrics_in_thread(bot, slack: SlackStandIn, slack_settings, tiny_model,
                                                      start_worker):
    worker = start_worker(slack_settings)
    sender = SlackSender(bot.url)

    started = time.monotonic()
    response = sender.command(f"finetune {tiny_model.split(':')[0]}")
    assert response.status_code == 200
    assert time.monotonic() - started < 3
    opened = slack.wait_for(lambda: slack.of("views.open"), timeout=10)
    view = opened[0].params["view"]
    assert view["callback_id"] == "fmbot.finetune"
    model_block = next(b for b in view["blocks"] if b["block_id"] == BlockId.MODEL)
    assert model_block["element"]["initial_option"]["value"] == tiny_model

    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    response = sender.view_submission(view, submit_values(tiny_model, upload, "sentence1=input_string,label=label_string"))
    assert response.status_code == 200
    assert response.text == ""  # a plain ack closes the modal

    queued = slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if "thread_ts" not in c.params], 10)
    assert queued[0].params["channel"] == "C0CHAN"
    thread = None

    def metrics_reply():
        nonlocal thread
        for call in slack.of("chat.postMessage"):
            if call.params.get("thread_ts") and "Metrics" in call.params.get("text", ""):
                thread = call.params["thread_ts"]
                return call
        return None

    reply = slack.wait_for(metrics_reply, timeout=180)
    assert "accuracy" in reply.params["text"] and "f1_score_macro" in reply.params["text"]
    assert slack.of("chat.update"), "the status message is kept current"
    records = Ledger(bot.runtime.redis).recent()
    assert len(records) == 1 and records[0].state == "completed", worker.output()
    assert records[0].reply_to.thread_ts == thread
    assert 0.0 <= records[0].metrics["accuracy"] <= 1.0
    assert records[0].output_model == "tiny-bert-ft:1"


def test_bad_file_is_refused_inline(bot, slack: SlackStandIn, tiny_model):
    sender = SlackSender(bot.url)
    sender.command("finetune")
    view = slack.wait_for(lambda: slack.of("views.open"), timeout=10)[0].params["view"]
    bad = b'{"input_string": "fine", "label_string": "POSITIVE"}\n{"input_string": "bad"}\n'
    upload = slack.add_file("train.jsonl", bad)
    response = sender.view_submission(view, submit_values(tiny_model, upload, "sentence1=input_string,label=label_string"))
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert body["errors"][BlockId.TRAIN_FILE] .startswith('train.jsonl line 2: column "label_string" is missing')
    assert Ledger(bot.runtime.redis).recent() == []
    assert not slack.of("chat.postMessage")


@pytest.mark.parametrize("case", ["forged", "stale", "missing"])
def test_unsigned_or_stale_requests_are_refused(bot, slack: SlackStandIn, case):
    sender = SlackSender(bot.url)
    if case == "forged":
        response = sender.command("finetune", signature="v0=" + "0" * 64)
    elif case == "stale":
        response = sender.command("finetune", timestamp=int(time.time()) - 6 * 60)
    else:
        response = sender.command("finetune", signature="")
    assert response.status_code == 401
    time.sleep(0.3)
    assert [c.method for c in slack.calls] == []
    assert Ledger(bot.runtime.redis).recent() == []


def test_health_endpoint(bot):
    import requests

    response = requests.get(bot.url.replace("/slack/events", "/healthz"), timeout=5)
    assert response.status_code == 200

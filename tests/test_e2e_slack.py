"""End to end with real parts: signed HTTP to the bot, real Redis, an RQ worker process, the Slack stand-in."""

from __future__ import annotations

import time

import pytest

from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.helpers import DATA
from tests.slack_standin import SlackSender, SlackStandIn
from workers.ledger import Ledger


def select(value: str) -> dict:
    return {"type": "static_select", "selected_option": {"value": value}}


def data_values(model: str, file: dict, *, test_split: str = "20") -> dict:
    return {
        BlockId.MODEL: {ActionId.MODEL: select(model)},
        BlockId.TASK: {ActionId.TASK: select("text-classification")},
        BlockId.TRAIN_FILE: {ActionId.FILE: {"type": "file_input", "files": [file]}},
        BlockId.TRAIN_SOURCE: {ActionId.SOURCE: {"type": "plain_text_input", "value": None}},
        BlockId.VALIDATION_FILE: {ActionId.FILE: {"type": "file_input", "files": []}},
        BlockId.VALIDATION_SPLIT: {ActionId.SPLIT: {"type": "number_input", "value": "0"}},
        BlockId.TEST_FILE: {ActionId.FILE: {"type": "file_input", "files": []}},
        BlockId.TEST_SPLIT: {ActionId.SPLIT: {"type": "number_input", "value": test_split}},
    }


def chosen_values(view: dict) -> dict:
    """Submit a view as shown: every select keeps its preselected option."""
    values = {}
    for block in view["blocks"]:
        element = block.get("element") or {}
        if block.get("type") == "input" and element.get("type") == "static_select":
            values[block["block_id"]] = {element["action_id"]: {
                "type": "static_select", "selected_option": element.get("initial_option")}}
    return values


def compute_values(compute: str = "cpu", instances: str = "1", epochs: str = "2") -> dict:
    def number(value: str) -> dict:
        return {ActionId.NUMBER: {"type": "number_input", "value": value}}

    return {
        BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select", "selected_option": {"value": compute}}},
        BlockId.INSTANCES: number(instances),
        BlockId.EPOCHS: number(epochs),
        BlockId.LEARNING_RATE: number("0.001"),
        BlockId.BATCH_SIZE: number("16"),
    }


def nth_view(slack: SlackStandIn, method: str, index: int, callback: str, timeout: float = 90) -> dict:
    calls = slack.wait_for(lambda: slack.of(method)[index:] or None, timeout=timeout)
    view = calls[0].params["view"]
    assert view["callback_id"] == callback, view
    return view


def open_form(sender: SlackSender, slack: SlackStandIn, text: str) -> dict:
    opened, started = len(slack.of("views.open")), time.monotonic()
    response = sender.command(text)
    assert response.status_code == 200 and response.text == "" and time.monotonic() - started < 3
    return nth_view(slack, "views.open", opened, CallbackId.FORM_DATA, timeout=10)


def walk_to_compute_step(sender: SlackSender, slack: SlackStandIn, model: str, upload: dict) -> dict:
    view = open_form(sender, slack, f"finetune {model.split(':')[0]}")
    response = sender.view_submission(view, data_values(model, upload))
    assert response.status_code == 200 and response.json()["response_action"] == "update"
    assert response.json()["view"]["callback_id"] == CallbackId.FORM_CHECKING
    mapping_view = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    response = sender.view_submission(mapping_view, chosen_values(mapping_view))
    assert response.json()["view"]["callback_id"] == CallbackId.FORM_CHECKING
    return nth_view(slack, "views.update", 1, CallbackId.FORM_COMPUTE)


def test_finetune_from_slack_posts_metrics_in_thread(bot, slack: SlackStandIn, slack_settings, tiny_model,
                                                      start_worker):
    worker = start_worker(slack_settings)
    sender = SlackSender(bot.url)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)

    data_view = slack.of("views.open")[0].params["view"]
    model_block = next(b for b in data_view["blocks"] if b["block_id"] == BlockId.MODEL)
    assert model_block["element"]["initial_option"]["value"] == tiny_model
    mapping_view = slack.of("views.update")[0].params["view"]
    preselected = {b["block_id"]: (b["element"].get("initial_option") or {}).get("value")
                   for b in mapping_view["blocks"] if b.get("type") == "input"}
    assert preselected == {"map:sentence1": "input_string", "map:label": "label", "map:sentence2": "__none__"}
    assert [o["value"] for o in mapping_view["blocks"][1]["element"]["options"]] == [
        "label", "label_string", "input_string"]

    response = sender.view_submission(compute_view, compute_values())
    assert response.status_code == 200
    assert response.text == ""  # a plain ack closes the modal

    queued = slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if "thread_ts" not in c.params], 10)
    assert queued[0].params["channel"] == "C0CHAN"

    def metrics_reply():
        return next((c for c in slack.of("chat.postMessage")
                     if c.params.get("thread_ts") and "Metrics" in c.params.get("text", "")), None)

    reply = slack.wait_for(metrics_reply, timeout=180)
    assert "accuracy" in reply.params["text"] and "f1_score_macro" in reply.params["text"]
    assert slack.of("chat.update"), "the status message is kept current"
    records = Ledger(bot.runtime.redis).recent()
    assert len(records) == 1 and records[0].state == "completed", worker.output()
    assert records[0].reply_to.thread_ts == reply.params["thread_ts"]
    assert 0.0 <= records[0].metrics["accuracy"] <= 1.0
    assert records[0].output_model == "tiny-bert-ft:1"


def test_bad_rows_are_refused_before_any_job(bot, slack: SlackStandIn, tiny_model):
    sender = SlackSender(bot.url)
    view = open_form(sender, slack, "finetune")
    bad = b'{"text": "fine", "label": "POSITIVE"}\n{"text": "bad", "label": "NEGATIVE"}\n{"text": "odd"}\n'
    response = sender.view_submission(view, data_values(tiny_model, slack.add_file("train.jsonl", bad)))
    assert response.json()["response_action"] == "update"
    mapping_view = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    sender.view_submission(mapping_view, chosen_values(mapping_view))
    again = nth_view(slack, "views.update", 1, CallbackId.FORM_MAPPING)
    assert again["blocks"][0]["block_id"] == BlockId.FORM_ERROR
    assert 'train.jsonl line 3: column "label" is missing' in again["blocks"][0]["text"]["text"]
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

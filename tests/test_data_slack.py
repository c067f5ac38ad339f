"""The form steps of issue 16 through the Slack stand-in: the preview in the mapping step, Skip N
rows and continue, Register as dataset, and the registered-dataset select (block_suggestion)."""

from __future__ import annotations

import json
import time

import pytest

from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.slack_standin import SlackSender, SlackStandIn
from tests.test_data import sst2_rows, sst2_with_bad_rows
from tests.test_e2e_slack import chosen_values, compute_values, data_values, nth_view, open_form
from tests.tiny_models import add_tiny_bert
from workers.ledger import Ledger


@pytest.fixture
def sender(bot, slack) -> SlackSender:
    return SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")


def click(sender: SlackSender, view: dict, action: ActionId, value: str) -> None:
    payload = {"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
               "trigger_id": f"t.{time.time_ns()}", "view": {**view, "id": "V0001"},
               "actions": [{"action_id": action, "block_id": BlockId.BAD_ROWS, "value": value, "type": "button"}]}
    assert sender.interaction(payload).status_code == 200


def buttons(view: dict) -> dict[str, str]:
    return {e["action_id"]: e["text"]["text"] for b in view["blocks"] if b.get("block_id") == BlockId.BAD_ROWS
            for e in b["elements"]}


def test_preview_skip_and_register_in_the_form(sender, slack: SlackStandIn, slack_settings, bot, tmp_path):
    model = add_tiny_bert(slack_settings.fmbot_models_dir, [r["input_string"] for r in sst2_rows()]).ref
    upload = slack.add_file("sst2_bad.jsonl", sst2_with_bad_rows(tmp_path, 3).read_bytes())
    view = open_form(sender, slack, "finetune")
    assert {BlockId.TRAIN_DATASET} <= {b["block_id"] for b in view["blocks"]}
    values = data_values(model, upload)
    values[BlockId.TASK] = {ActionId.TASK: {"type": "static_select", "selected_option": {"value": "text-classification"}}}
    sender.view_submission(view, values)
    mapping_view = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    values = chosen_values(mapping_view)
    values["map:sentence1"] = {ActionId.COLUMN: {"type": "static_select", "selected_option": {"value": "input_string"}}}
    values["map:label"] = {ActionId.COLUMN: {"type": "static_select", "selected_option": {"value": "label_string"}}}
    assert buttons(mapping_view) == {ActionId.REGISTER_DATASET: "Register as dataset"}

    click(sender, mapping_view, ActionId.REGISTER_DATASET, "register")
    told = slack.wait_for(lambda: [c for c in slack.of("chat.postEphemeral") if "Registered" in c.params["text"]])
    assert "as dataset `sst2_bad:1` (87 rows)" in told[0].params["text"]

    sender.view_submission(mapping_view, values)
    refused = nth_view(slack, "views.update", 1, CallbackId.FORM_MAPPING)
    error = next(b for b in refused["blocks"] if b.get("block_id") == BlockId.FORM_ERROR)["text"]["text"]
    assert 'sst2_bad.jsonl line 1: column "label_string" is empty' in error and "3 of 87 rows are bad" in error
    assert buttons(refused)[ActionId.SKIP_BAD_ROWS] == "Skip 3 rows and continue"

    click(sender, refused, ActionId.SKIP_BAD_ROWS, "3")
    compute_view = nth_view(slack, "views.update", 3, CallbackId.FORM_COMPUTE)
    texts = json.dumps(compute_view["blocks"])
    assert "3 bad rows skipped" in texts and sst2_rows()[1]["input_string"][:40] in texts
    assert sender.view_submission(compute_view, compute_values()).text == ""
    record = slack.wait_for(lambda: Ledger(bot.runtime.redis).recent() or None)[0]
    assert (record.data[0].rows, record.data[0].skipped) == (84, 3)

    options = sender.post("payload=" + json.dumps({
        "type": "block_suggestion", "action_id": ActionId.DATASET, "block_id": BlockId.TRAIN_DATASET, "value": "sst2",
        "user": {"id": "U0USER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
        "view": view}).replace("+", "%2B").replace("&", "%26")).json()["options"]
    assert [o["value"] for o in options] == ["sst2_bad:1"]

    opened = len(slack.of("views.open"))
    assert sender.command("evaluate").status_code == 200
    again = nth_view(slack, "views.open", opened, CallbackId.FORM_DATA)
    values = data_values(model, upload)
    values = {k: v for k, v in values.items() if k in (BlockId.MODEL, BlockId.TASK)}
    values[BlockId.TEST_DATASET] = {ActionId.DATASET: {"type": "external_select",
                                                        "selected_option": {"value": "sst2_bad:1"}}}
    answer = sender.view_submission(again, values).json()
    assert answer["response_action"] == "update", answer
    chosen = nth_view(slack, "views.update", 4, CallbackId.FORM_MAPPING)
    assert "data:sst2_bad:1/sst2_bad.jsonl" in chosen["blocks"][0]["text"]["text"]


def test_the_result_thread_says_which_dataset_and_how_many_rows_were_skipped():
    from bot.slack.views.jobs import SlackJobRenderer
    from workers.ledger import DataUse, JobRecord
    from workers.notifier import JobEvent

    record = JobRecord(id="ev-1", kind="evaluate", model="m:1", task="text-classification", spec={}, requester="U1",
                       state="completed", metrics={"accuracy": 0.5},
                       data=[DataUse(role="test", name="data:sst2:2/sst2.jsonl", dataset="sst2:2", rows=84, skipped=3,
                                     skipped_rows=['line 1 "label": column "label" is empty'])])
    text = SlackJobRenderer().thread_reply(record, JobEvent.COMPLETED).text
    assert 'test data `sst2:2`: 3 bad rows skipped (line 1 "label": column "label" is empty …)' in text

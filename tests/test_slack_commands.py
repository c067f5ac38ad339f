"""The Slack surface through real HTTP: every command, each form step, buttons, progress, files, App Home.

Every message and view the bot sends is checked against Slack's limits by the `slack` fixture.
"""

from __future__ import annotations

import json
import time

import pytest

from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.limits import message_problems, view_problems
from handlers.registry import COMMANDS, Surface, on
from tests.helpers import DATA
from tests.slack_standin import SlackSender, SlackStandIn
from tests.test_e2e_slack import (
    chosen_values,
    compute_values,
    data_values,
    nth_view,
    open_form,
    walk_to_compute_step,
)
from tests.tiny_models import add_tiny_bert
from workers.ledger import Ledger


@pytest.fixture
def sender(bot, slack) -> SlackSender:
    return SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")


@pytest.fixture
def ask(sender, slack):
    """A command's `answers`th message: fmbot acks empty and answers ephemerally through the response URL."""
    def asked(text: str, answers: int = 1) -> dict:
        body = sender.ask(text, slack, answers=answers)[-1]
        assert body["response_type"] == "ephemeral"
        assert message_problems(body) == []
        return body
    return asked


def test_help_lists_every_command_with_an_example(ask):
    text = ask("help")["text"]
    for command in on(Surface.SLACK):
        assert f"/fm {command.usage}" in text and command.example in text


@pytest.mark.parametrize(("typed", "suggested"), [("serch minilm", "search"), ("finetun", "finetune"),
                                                  ("stats ft-1", "status"), ("cancle", "cancel")])
def test_typos_get_the_closest_command(ask, typed, suggested):
    text = ask(typed)["text"]
    assert f"is not an fmbot command. Did you mean `/fm {COMMANDS[suggested].usage}`?" in text


def test_search_and_card_render_blocks_with_buttons(ask, tiny_model):
    body = ask("search tiny task:text-classification")
    assert "1 found" in body["blocks"][0]["text"]["text"]
    actions = [b for b in body["blocks"] if b["type"] == "actions"][0]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Try", "Evaluate", "Fine-tune", "Deploy"]
    assert {e["value"] for e in actions["elements"]} == {tiny_model}

    card = ask("card tiny-bert")
    assert card["blocks"][0]["text"]["text"] == tiny_model
    assert "text-classification" in card["blocks"][1]["text"]["text"]

    missing = ask("card tiny-brt")
    assert missing["text"] == ':warning: model "tiny-brt" is not in the catalog. Did you mean tiny-bert?'
    unknown_task = ask("search x task:poetry")
    assert 'unknown task "poetry"' in unknown_task["text"]


def test_search_paginates_with_next_and_previous(sender, ask, slack: SlackStandIn, slack_settings):
    for index in range(11):
        add_tiny_bert(slack_settings.fmbot_models_dir, ["a b c d"], name=f"model-{index:02d}")
    first = ask("search model")
    assert "11 found · page 1 of 2" in first["blocks"][0]["text"]["text"]
    nav = first["blocks"][-1]["elements"]
    assert [e["text"]["text"] for e in nav] == ["Next"]
    payload = {"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"},
               "api_app_id": "A0001", "container": {"type": "message", "channel_id": "C0CHAN"},
               "response_url": f"{slack.base_url}/respond/2", "trigger_id": "t.1", "actions": [nav[0]]}
    assert sender.interaction(payload).status_code == 200
    page = slack.wait_for(lambda: slack.answers(payload["response_url"]), 10)[0]
    assert page["replace_original"] is True
    assert "page 2 of 2" in page["blocks"][0]["text"]["text"]
    assert [e["text"]["text"] for e in page["blocks"][-1]["elements"]] == ["Previous"]


def test_jobs_status_cancel_and_quota(ask, tiny_model):
    assert ask("jobs")["text"] == "You have no jobs yet."
    assert 'there is no job "ft-nope"' in ask("status ft-nope")["text"]
    assert "Usage: `/fm cancel <job>`" in ask("cancel")["text"]
    assert "Checking compute and quota" in ask("quota")["text"]
    quota = ask("quota", answers=2)
    assert quota["replace_original"] is True
    assert "`cpu`" in quota["text"] and "cores on this machine" in quota["text"]
    assert 'no compute named "tpu"' in ask("quota tpu", answers=2)["text"]


def test_long_command_is_refused_politely(ask):
    text = ask("search " + "x" * 5000)["text"]
    assert "5,007 characters long; the limit is 2,000" in text


def test_card_buttons_open_forms_with_the_model_filled_in(sender, slack: SlackStandIn, tiny_model):
    for action, title in ((ActionId.CARD_FINETUNE, "Fine-tune a model"), (ActionId.CARD_EVALUATE, "Evaluate a model")):
        payload = {"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
                   "channel": {"id": "C0CHAN"}, "trigger_id": f"t.{action}",
                   "actions": [{"action_id": action, "value": tiny_model, "type": "button"}]}
        assert sender.interaction(payload).status_code == 200
        view = slack.wait_for(lambda: [c for c in slack.of("views.open")
                                       if c.params["trigger_id"] == f"t.{action}"], 10)[0].params["view"]
        assert view["title"]["text"] == title
        model = next(b for b in view["blocks"] if b["block_id"] == BlockId.MODEL)
        assert model["element"]["initial_option"]["value"] == tiny_model


def test_data_step_inline_errors(sender, slack: SlackStandIn, tiny_model):
    view = open_form(sender, slack, "finetune")
    values = data_values(tiny_model, {})
    values[BlockId.TRAIN_FILE] = {ActionId.FILE: {"type": "file_input", "files": []}}
    values[BlockId.VALIDATION_SPLIT] = {ActionId.SPLIT: {"type": "number_input", "value": "60"}}
    values[BlockId.TEST_SPLIT] = {ActionId.SPLIT: {"type": "number_input", "value": "50"}}
    body = sender.view_submission(view, values).json()
    assert body["response_action"] == "errors"
    assert body["errors"][BlockId.TRAIN_FILE].startswith("Upload a training file")
    assert body["errors"][BlockId.TEST_SPLIT].startswith("split: validation and test splits sum to 110%")

    values = data_values("nope", {"id": "F1"})
    body = sender.view_submission(view, values).json()
    assert body["errors"][BlockId.MODEL].startswith('model "nope" is not in the catalog')


def test_csv_columns_fill_the_mapping_selects(sender, slack: SlackStandIn, slack_settings):
    texts = [line for line in (DATA / "mrpc_dev.csv").read_text().splitlines()]
    model = add_tiny_bert(slack_settings.fmbot_models_dir, texts, name="pair-bert").ref
    upload = slack.add_file("mrpc.csv", (DATA / "mrpc_dev.csv").read_bytes())
    view = open_form(sender, slack, "finetune pair-bert")
    sender.view_submission(view, data_values(model, upload, test_split="20"))
    mapping_view = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    preselected = {b["block_id"]: (b["element"].get("initial_option") or {}).get("value")
                   for b in mapping_view["blocks"] if b.get("type") == "input"}
    assert preselected == {"map:sentence1": "sentence1", "map:label": "label", "map:sentence2": "sentence2"}
    options = [o["value"] for o in mapping_view["blocks"][1]["element"]["options"]]
    assert options == ["label", "sentence1", "sentence2"]

    values = chosen_values(mapping_view)
    values["map:label"] = {ActionId.COLUMN: {"type": "static_select", "selected_option": None}}
    body = sender.view_submission(mapping_view, values).json()
    assert body["response_action"] == "errors"
    assert body["errors"]["map:label"].startswith('column mapping: no column is mapped to "label"')


def test_compute_options_and_quota_errors(sender, slack: SlackStandIn, tiny_model, bot):
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)
    options = sender.post("payload=" + json.dumps({
        "type": "block_suggestion", "action_id": ActionId.COMPUTE, "block_id": BlockId.COMPUTE, "value": "",
        "user": {"id": "U0USER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
        "view": compute_view}).replace("+", "%2B").replace("&", "%26"))
    assert options.status_code == 200
    assert [o["value"] for o in options.json()["options"]][-1] == "cpu"

    body = sender.view_submission(compute_view, compute_values(instances="3")).json()
    assert body["errors"][BlockId.INSTANCES] == ("the local platform runs one instance, not 3. Use 1 instance; "
                                                 "Use FMBOT_PLATFORM=azureml for more")
    body = sender.view_submission(compute_view, compute_values(compute="tpu")).json()
    assert body["errors"][BlockId.COMPUTE].startswith('unknown compute "tpu" on the local platform')
    body = sender.view_submission(compute_view, compute_values(epochs="0")).json()
    assert body["errors"][BlockId.EPOCHS] == "Input should be greater than or equal to 1"
    assert Ledger(bot.runtime.redis).recent() == []


def test_job_messages_progress_plot_buttons_and_home(sender, slack: SlackStandIn, slack_settings, tiny_model,
                                                     start_worker, bot):
    worker = start_worker(slack_settings)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)
    assert sender.view_submission(compute_view, compute_values(epochs="12")).text == ""

    def finished():
        return [c for c in slack.of("chat.postMessage") if "Metrics" in c.params.get("text", "")]

    slack.wait_for(finished, timeout=240)
    record = Ledger(bot.runtime.redis).recent()[0]
    assert record.state == "completed", worker.output()

    progress_updates = [c for c in slack.of("chat.update")
                        if "% · step " in json.dumps(c.params.get("blocks"), ensure_ascii=False)]
    assert len(progress_updates) >= 2, [c.params.get("text") for c in slack.of("chat.update")]
    last_status = slack.of("chat.update")[-1].params
    assert "completed" in last_status["text"]
    buttons = [e for b in last_status["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Evaluate", "Register", "Deploy", "Compare with base"]
    assert {b["value"] for b in buttons} == {record.output_model, record.id}

    upload_url = slack.wait_for(lambda: slack.of("files.getUploadURLExternal"), 10)[0]
    assert upload_url.params["filename"].endswith("-loss.png")
    completed = slack.wait_for(lambda: slack.of("files.completeUploadExternal"), 10)[0]
    assert completed.params["thread_ts"] == record.reply_to.thread_ts
    png = next(iter(slack.uploads.values()))
    assert png.startswith(b"\x89PNG") and len(png) > 2000

    def home_shows_it() -> list:  # published after the job's end, which a busy machine can delay
        return [h for h in slack.of("views.publish")
                if record.id in json.dumps(h.params["view"]) and "completed" in json.dumps(h.params["view"])]

    home = slack.wait_for(home_shows_it, 20)[-1]
    assert home.params["user_id"] == "U0USER"
    assert view_problems(home.params["view"]) == []

    payload = {"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
               "channel": {"id": "C0CHAN"}, "trigger_id": "t.register",
               "actions": [{"action_id": ActionId.JOB_REGISTER, "value": record.output_model, "type": "button"}]}
    sender.interaction(payload)
    shown = slack.wait_for(lambda: slack.of("chat.postEphemeral"), 10)[0].params
    assert shown["user"] == "U0USER" and record.output_model in shown["text"]


def test_cancel_button_stops_a_running_job(sender, slack: SlackStandIn, slack_settings, tiny_model,
                                           start_worker, bot):
    start_worker(slack_settings)
    upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
    compute_view = walk_to_compute_step(sender, slack, tiny_model, upload)
    sender.view_submission(compute_view, compute_values(epochs="100"))
    ledger = Ledger(bot.runtime.redis)
    slack.wait_for(lambda: ledger.recent() and ledger.recent()[0].progress is not None, 60)
    job_id = ledger.recent()[0].id
    other = {"type": "block_actions", "user": {"id": "U0OTHER"}, "team": {"id": "T0001"}, "api_app_id": "A0001",
             "channel": {"id": "C0CHAN"}, "trigger_id": "t.c",
             "actions": [{"action_id": ActionId.CANCEL_JOB, "value": job_id, "type": "button"}]}
    sender.interaction(other)
    refusal = slack.wait_for(lambda: slack.of("chat.postEphemeral"), 10)[0].params
    assert refusal["user"] == "U0OTHER" and "started by someone else" in refusal["text"]
    assert ledger.get(job_id).state == "running"

    sender.interaction({**other, "user": {"id": "U0USER"}})
    slack.wait_for(lambda: ledger.get(job_id).state == "canceled", 20)
    slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if "was canceled" in c.params.get("text", "")], 30)
    output_folder = slack_settings.fmbot_models_dir / "tiny-bert-ft"
    slack.wait_for(lambda: not any(output_folder.glob("*")), 30)  # training stopped and cleaned up
    record = ledger.get(job_id)
    assert record.state == "canceled" and record.progress.step < record.progress.total
    assert record.output_model is None


def test_app_home_opened_publishes_the_home_tab(sender, slack: SlackStandIn):
    event = {"token": "x", "team_id": "T0001", "api_app_id": "A0001", "type": "event_callback",
             "event_id": "Ev1", "event_time": int(time.time()),
             "event": {"type": "app_home_opened", "user": "U0USER", "channel": "D0001", "tab": "home"}}
    response = sender.post(json.dumps(event), headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    published = slack.wait_for(lambda: slack.of("views.publish"), 10)[0].params
    assert published["user_id"] == "U0USER" and published["view"]["type"] == "home"
    assert "No jobs yet" in json.dumps(published["view"])

"""Data access: a pasted file id or data asset reads only what the requester may read where they
ask, and no text of a user's file can ping a channel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.slack.files import resolve_data
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.views.jobs import SlackJobRenderer
from handlers import policy
from handlers.errors import UserError
from tests.test_e2e_slack import data_values, nth_view, open_form
from tests.slack_standin import SlackSender, SlackStandIn
from workers.ledger import JobRecord
from workers.notifier import JobEvent

SECRET_CSV = b"salary,name\n250000,the CEO\n"


def paste(values: dict, text: str) -> dict:
    values[BlockId.TRAIN_FILE] = {ActionId.FILE: {"type": "file_input", "files": []}}
    values[BlockId.TRAIN_SOURCE] = {ActionId.SOURCE: {"type": "plain_text_input", "value": text}}
    return values


def submit_pasted(bot, slack: SlackStandIn, model: str, text: str) -> dict:
    sender = SlackSender(bot.url)
    view = open_form(sender, slack, f"finetune {model.split(':')[0]}")
    assert sender.view_submission(view, paste(data_values(model, {}), text)).json()["response_action"] == "update"
    return nth_view(slack, "views.update", 0, CallbackId.FORM_DATA)


@pytest.mark.parametrize("shared_in, members", [
    (("G0SECRET",), {"C0CHAN": ["U0USER"], "G0SECRET": ["U0CEO"]}),  # a private channel the bot is in
    (("D0CEO",), {"C0CHAN": ["U0USER"]}),                             # someone's DM with the bot
    (("C0CHAN",), {"C0CHAN": ["U0OTHER", "U0THIRD"]}),                # shared here, requester not a member
])
def test_a_pasted_file_id_of_another_conversation_is_not_read(bot, slack, slack_settings, tiny_model, shared_in,
                                                             members):
    slack.members = members
    secret = slack.add_file("salaries.csv", SECRET_CSV, "text/csv", channels=shared_in)
    view = submit_pasted(bot, slack, tiny_model, secret["id"])
    shown = json.dumps(view)
    assert "is not shared in this channel" in shown
    assert "salary" not in shown and "CEO" not in shown
    assert not list(Path(slack_settings.fmbot_data_dir).glob("**/*.csv")), "the file was downloaded"


def test_a_file_shared_here_with_the_requester_a_member_is_read(bot, slack, tiny_model):
    slack.members = {"C0CHAN": ["U0A", "U0B", "U0USER"]}  # found on the second page of members
    mine = slack.add_file("reviews.csv", b"review,stars\ngreat,5\nbad,1\n", "text/csv")
    sender = SlackSender(bot.url)
    view = open_form(sender, slack, f"finetune {tiny_model.split(':')[0]}")
    sender.view_submission(view, paste(data_values(tiny_model, {}), mine["id"]))
    mapping = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    assert "review" in json.dumps(mapping)


def test_members_pages_are_followed(slack_settings, slack, tmp_path):
    from slack_sdk import WebClient

    slack.members = {"C0CHAN": [f"U{i:04d}" for i in range(2500)] + ["U0USER"]}
    mine = slack.add_file("reviews.csv", b"review,stars\ngreat,5\n", "text/csv")
    client = WebClient(token="xoxb-test-token", base_url=slack.api_url)
    ref = resolve_data(slack_settings, client, None, mine["id"], tmp_path, label="training data",
                       channel="C0CHAN", user="U0USER")
    assert Path(ref.path).read_bytes().startswith(b"review")


@pytest.mark.parametrize("reference, refusal", [
    ("azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/hr/paths/salaries.csv", "raw azureml://"),
    ("azureml:hr-salaries:1", "not one fmbot may read"),
    ("azureml:reviews:2", "not one fmbot may read"),
])
def test_data_assets_outside_the_policy_list_are_refused(slack_settings, slack, tmp_path, reference, refusal):
    from slack_sdk import WebClient

    policy.install(policy.Policy(data_assets=["reviews:1", "tickets"]))
    try:
        client = WebClient(token="xoxb-test-token", base_url=slack.api_url)
        settings = slack_settings.replace(fmbot_platform="azureml")
        with pytest.raises(UserError, match=refusal):
            resolve_data(settings, client, None, reference, tmp_path, label="training data", channel="C0CHAN",
                         user="U0USER")
        for allowed in ("azureml:reviews:1", "azureml:tickets:7"):
            assert resolve_data(settings, client, None, allowed, tmp_path, label="training data", channel="C0CHAN",
                                user="U0USER").path == allowed
    finally:
        policy.install(policy.Policy())


def test_cells_column_and_file_names_cannot_ping_the_channel():
    record = JobRecord(id="ev-1", kind="evaluate", state="completed", model="m:1", task="text-classification",
                       spec={}, requester="U0USER", metrics={"accuracy": 1.0},
                       samples=[{"input": "<!channel> free pizza <https://evil.example|click>",
                                 "prediction": "<!here>", "reference": "<@U0CEO>"}])
    text = json.dumps(SlackJobRenderer().thread_reply(record, JobEvent.COMPLETED).blocks)
    failed = record.model_copy(update={"state": "failed", "error": "<!everyone>.csv line 2: column <!channel> is empty"})
    text += json.dumps(SlackJobRenderer().thread_reply(failed, JobEvent.FAILED).blocks)
    for ping in ("<!channel>", "<!here>", "<@U0CEO>", "<https://evil", "<!everyone>"):
        assert ping not in text
    assert "&lt;!channel&gt; free pizza" in text

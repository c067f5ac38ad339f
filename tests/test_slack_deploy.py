"""Try, deploy, endpoints, keys and import from Slack, through real HTTP and a real worker."""

from __future__ import annotations

import json

import pytest
import requests
from redis import Redis

from bot.slack.ids import ActionId, BlockId, CallbackId
from tests.helpers import wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from workers import keys
from workers.ledger import Ledger


@pytest.fixture
def sender(bot, slack) -> SlackSender:
    return SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")


def deploy_values(name: str, compute: str | None = "cpu", instances: str = "1") -> dict:
    """The deploy modal's inputs as Slack submits them: managed compute."""
    return {
        BlockId.DEPLOY_KIND: {ActionId.DEPLOY_KIND: {"type": "radio_buttons", "selected_option": {"value": "managed"}}},
        BlockId.ENDPOINT_NAME: {ActionId.TEXT: {"type": "plain_text_input", "value": name}},
        BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select",
                                             "selected_option": {"value": compute} if compute else None}},
        BlockId.INSTANCES: {ActionId.NUMBER: {"type": "number_input", "value": instances}},
    }


def test_try_answers_through_the_response_url(sender, slack: SlackStandIn, tiny_model, slack_settings, start_worker):
    start_worker(slack_settings)  # its try service answers the try
    assert wait_until(lambda: Redis.from_url(slack_settings.redis_url).exists(keys.try_alive()), 60)
    trying, answer = sender.ask("try tiny-bert what a lovely film", slack, answers=2, timeout=60)
    assert trying["text"].startswith(":hourglass_flowing_sand: Trying") and answer["replace_original"] is True
    assert "tiny-bert:1" in answer["text"] and "what a lovely film" in answer["text"]
    assert '"label"' in answer["text"]

    sender.button(ActionId.CARD_TRY, tiny_model)
    sample = slack.wait_for(lambda: slack.of("chat.postEphemeral"), 60)[0].params
    assert "the task's sample input" in sample["text"]


def test_deploy_form_key_only_to_owner_and_delete(sender, slack: SlackStandIn, slack_settings, tiny_model,
                                                  start_worker, bot):
    start_worker(slack_settings)
    assert sender.command("deploy tiny-bert").status_code == 200
    view = slack.wait_for(lambda: slack.of("views.open"), 10)[0].params["view"]
    assert view["callback_id"] == CallbackId.DEPLOY

    bad = sender.view_submission(view, deploy_values("9-bad_name")).json()
    assert bad["response_action"] == "errors"
    assert "3 to 32 characters: a letter first" in bad["errors"][BlockId.ENDPOINT_NAME]
    too_many = sender.view_submission(view, deploy_values("tiny-ep", instances="4")).json()
    assert "runs one instance, not 4" in too_many["errors"][BlockId.INSTANCES]
    assert sender.view_submission(view, deploy_values("tiny-ep")).text == ""

    ledger = Ledger(bot.runtime.redis)
    reply = slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if ":rocket:" in c.params.get("text", "")],
                           120)[0].params
    assert ledger.recent()[0].state == "completed"
    url = ledger.recent()[0].result["url"]
    assert url in reply["text"] and "curl -X POST" in reply["text"]

    sender.button(ActionId.SHOW_KEY, "tiny-ep", user="U0OTHER")
    refusal = slack.wait_for(lambda: slack.of("chat.postEphemeral"), 10)[0].params
    assert refusal["user"] == "U0OTHER" and "deployed by someone else" in refusal["text"]
    sender.button(ActionId.SHOW_KEY, "tiny-ep")
    shown = slack.wait_for(lambda: slack.of("chat.postEphemeral")[1:], 10)[0].params
    assert shown["user"] == "U0USER"
    key = shown["text"].split("`")[1]
    assert len(key) >= 16

    public = [json.dumps(c.params) for c in slack.calls if c.method in ("chat.postMessage", "chat.update",
                                                                        "views.publish", "response_url")]
    assert not any(key in text for text in public), "the key reached a channel message"
    assert requests.post(url, json={"input_data": ["great"]}, headers={"Authorization": f"Bearer {key}"},
                         timeout=30).status_code == 200
    assert requests.post(url, json={"input_data": ["great"]}, headers={"Authorization": "Bearer nope"},
                         timeout=30).status_code == 401

    listed = sender.ask("endpoints", slack, answers=2)[1]
    assert "tiny-ep" in json.dumps(listed) and key not in json.dumps(listed)
    sender.button(ActionId.DELETE_ENDPOINT, "tiny-ep")
    slack.wait_for(lambda: "No endpoints" in json.dumps(slack.of("views.publish")[-1].params["view"])
                   if slack.of("views.publish") else False, 30)
    assert bot.runtime.platform.list_endpoints() == []


def test_import_checks_id_and_task(sender, slack: SlackStandIn, bot):
    refused = sender.ask("import not-an-id fill-mask", slack)[0]["text"]
    assert '"not-an-id" is not a Hugging Face model id' in refused
    sender.command("import")
    view = slack.wait_for(lambda: slack.of("views.open"), 10)[0].params["view"]
    assert view["callback_id"] == CallbackId.IMPORT
    values = {
        BlockId.MODEL_ID: {ActionId.TEXT: {"type": "plain_text_input", "value": "google-bert/bert-base-uncased"}},
        BlockId.TASK: {ActionId.TASK: {"type": "static_select", "selected_option": {"value": "chat-completion"}}},
        BlockId.LICENSE: {ActionId.TEXT: {"type": "plain_text_input", "value": None}},
    }
    body = sender.view_submission(view, values).json()
    assert body["response_action"] == "errors" and "cannot be imported" in body["errors"][BlockId.TASK]
    assert Ledger(bot.runtime.redis).recent() == []


def test_an_unexpected_error_in_a_view_listener_answers_with_the_trace_id(bot, sender, slack: SlackStandIn, tiny_model,
                                                                          monkeypatch):
    """A crafted submission (instances that is no number) used to make Bolt answer a bare HTTP 500: it
    is now refused on the field it is about. A fault behind the form (the quota check breaking) is
    answered with the trace id the log has."""
    assert sender.command("deploy tiny-bert").status_code == 200
    view = slack.wait_for(lambda: slack.of("views.open"), 10)[0].params["view"]
    values = {
        BlockId.DEPLOY_KIND: {ActionId.DEPLOY_KIND: {"type": "radio_buttons", "selected_option": {"value": "managed"}}},
        BlockId.ENDPOINT_NAME: {ActionId.TEXT: {"type": "plain_text_input", "value": "crafted"}},
        BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select", "selected_option": {"value": "cpu"}}},
        BlockId.INSTANCES: {ActionId.NUMBER: {"type": "number_input", "value": "many"}},
    }
    answer = sender.view_submission(view, values).json()
    assert answer["response_action"] == "errors" and list(answer["errors"]) == [BlockId.INSTANCES]
    assert "integer" in answer["errors"][BlockId.INSTANCES]

    def broken(*args, **kwargs):
        raise RuntimeError("the quota service fell over")

    monkeypatch.setattr(bot.runtime.platform, "check_quota", broken)
    values[BlockId.INSTANCES] = {ActionId.NUMBER: {"type": "number_input", "value": "1"}}
    response = sender.view_submission(view, values)
    assert response.status_code == 200
    answer = response.json()
    assert answer["response_action"] == "errors"
    (message,) = answer["errors"].values()
    assert "Something went wrong on our side; give the admins trace id " in message

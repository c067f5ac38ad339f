"""Every Slack entry point asks the policy: aliases, buttons, form submissions, suggestions, and
requests fmbot does not know. Each test plays the request a user could craft, signed as Slack signs it."""

from __future__ import annotations

import json
import time

from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.state import FormState
from tests.security.conftest import form_view, unowned_endpoint
from tests.slack_standin import SlackSender, SlackStandIn, button_payload
from workers.ledger import JobRecord, ReplyTarget, new_job_id


def ephemerals(slack: SlackStandIn, user: str) -> list[str]:
    return [c.params["text"] for c in slack.of("chat.postEphemeral") if c.params.get("user") == user]


def test_the_models_alias_follows_the_search_rule(strict_bot, slack):
    answer = SlackSender(strict_bot.url).command("models bert", user="U0USER", channel="C0ELSEWHERE").json()
    assert answer["text"].startswith(":no_entry: you are not allowed to search the catalog here")


def test_a_pagination_button_is_checked_where_it_is_pressed(strict_bot, slack):
    payload = button_payload(f"{ActionId.PAGE}:2", json.dumps({"q": "", "p": 2}), user="U0USER", channel="C0ELSEWHERE")
    payload["response_url"] = f"{slack.base_url}/respond/1"
    SlackSender(strict_bot.url).interaction(payload)
    slack.wait_for(lambda: ephemerals(slack, "U0USER"), 10)
    time.sleep(0.5)
    assert "search the catalog" in ephemerals(slack, "U0USER")[0]
    assert not slack.of("response_url"), "the refused page was rendered anyway"


def test_an_action_id_the_policy_does_not_know_is_refused(strict_bot, slack):
    response = SlackSender(strict_bot.url).button("endpoint_delete_all", "x", user="U0ADMIN", channel="C0OPEN")
    assert response.status_code == 200
    refusal = slack.wait_for(lambda: ephemerals(slack, "U0ADMIN"), 10)[0]
    assert "does not know that request" in refusal


def deploy_values(strict_bot, name: str) -> dict:
    compute = strict_bot.runtime.platform.compute_options("deploy")[0].name
    return {BlockId.ENDPOINT_NAME: {"e": {"type": "plain_text_input", "value": name}},
            BlockId.COMPUTE: {"e": {"type": "static_select", "selected_option": {"value": compute}}},
            BlockId.INSTANCES: {"e": {"type": "number_input", "value": "1"}}}


def deploy_jobs(strict_bot) -> list[JobRecord]:
    return [r for r in strict_bot.runtime.ledger.recent(limit=50) if r.kind == "deploy"]


def test_a_form_is_judged_by_the_channel_it_was_opened_in(strict_bot, slack, tiny):
    blocks = [BlockId.ENDPOINT_NAME, BlockId.COMPUTE, BlockId.INSTANCES]
    sender = SlackSender(strict_bot.url)
    elsewhere = form_view(strict_bot, CallbackId.DEPLOY, FormState(kind="deploy", channel="C0ELSEWHERE",
                                                                  user="U0USER", model=tiny), blocks)
    refused = sender.view_submission(elsewhere, deploy_values(strict_bot, "ep-one"), user="U0USER").json()
    assert "not allowed to deploy models here" in refused["errors"][BlockId.ENDPOINT_NAME]
    assert not deploy_jobs(strict_bot)

    allowed = form_view(strict_bot, CallbackId.DEPLOY, FormState(kind="deploy", channel="C0ML", user="U0USER",
                                                                model=tiny), blocks)
    response = sender.view_submission(allowed, deploy_values(strict_bot, "ep-two"), user="U0USER")
    assert response.status_code == 200 and "errors" not in (response.text and response.json() or {})
    assert [r.spec["endpoint"] for r in deploy_jobs(strict_bot)] == ["ep-two"]


def test_a_form_opened_by_someone_else_is_refused(strict_bot, slack, tiny):
    blocks = [BlockId.ENDPOINT_NAME, BlockId.COMPUTE, BlockId.INSTANCES]
    theirs = form_view(strict_bot, CallbackId.DEPLOY, FormState(kind="deploy", channel="C0ML", user="U0VICTIM",
                                                               model=tiny), blocks)
    refused = SlackSender(strict_bot.url).view_submission(theirs, deploy_values(strict_bot, "ep-x"),
                                                          user="U0MALLORY").json()
    assert "opened by someone else" in refused["errors"][BlockId.ENDPOINT_NAME]
    assert not deploy_jobs(strict_bot), "a job was recorded in the victim's name"


def test_suggestions_of_a_form_follow_its_channel(strict_bot, slack, tiny):
    def suggest(channel: str) -> dict:
        view = form_view(strict_bot, CallbackId.FORM_COMPUTE,
                         FormState(kind="finetune", channel=channel, user="U0USER", model=tiny), [BlockId.COMPUTE])
        payload = {"type": "block_suggestion", "user": {"id": "U0USER"}, "team": {"id": "T0001"},
                   "api_app_id": "A0001", "action_id": ActionId.COMPUTE, "block_id": BlockId.COMPUTE, "value": "",
                   "view": {**view, "id": "V0001"}}
        return SlackSender(strict_bot.url).interaction(payload).json()

    assert suggest("C0ELSEWHERE") == {"options": []}
    assert suggest("C0ML")["options"], "an allowed form gets its compute options"


def job(strict_bot, *, requester: str, channel: str, error: str | None = None) -> JobRecord:
    record = JobRecord(id=new_job_id("finetune"), kind="finetune", model="m:1", task="text-classification", spec={},
                       requester=requester, reply_to=ReplyTarget(channel=channel), error=error)
    return strict_bot.runtime.ledger.create(record)


def test_cancelling_others_follows_the_channel_rule_in_commands_and_buttons(strict_bot, slack):
    sender = SlackSender(strict_bot.url)
    first, second = job(strict_bot, requester="U0OWNER", channel="C0OPS"), job(strict_bot, requester="U0OWNER",
                                                                                channel="C0OPS")
    refused = sender.ask(f"cancel {first.id}", slack, user="U0ONCALL", channel="C0OPEN")[0]["text"]
    assert "started by someone else" in refused
    assert strict_bot.runtime.ledger.get(first.id).state == "queued"
    assert sender.ask(f"cancel {first.id}", slack, user="U0ONCALL", channel="C0OPS")[0]["text"].startswith("Canceled")
    sender.button(ActionId.CANCEL_JOB, second.id, user="U0ONCALL", channel="C0OPS")
    slack.wait_for(lambda: strict_bot.runtime.ledger.get(second.id).state == "canceled", 10)


def test_an_endpoint_without_a_known_owner_is_for_admins_only(strict_bot, slack):
    unowned_endpoint(strict_bot, "orphan")
    sender = SlackSender(strict_bot.url)
    sender.button(ActionId.SHOW_KEY, "orphan", user="U0USER", channel="C0OPEN")
    answer = slack.wait_for(lambda: ephemerals(slack, "U0USER"), 10)[0]
    assert "cannot see its key" in answer
    assert not any("secret-key-123" in json.dumps(c.params) for c in slack.calls), "the key was posted"
    sender.button(ActionId.SHOW_KEY, "orphan", user="U0ADMIN", channel="C0OPEN")
    assert "secret-key-123" in slack.wait_for(lambda: ephemerals(slack, "U0ADMIN"), 10)[0]


def test_admins_may_delete_anyones_endpoint(strict_bot, slack):
    unowned_endpoint(strict_bot, "someones", owner="U0OWNER")
    sender = SlackSender(strict_bot.url)
    sender.button(ActionId.DELETE_ENDPOINT, "someones", user="U0USER", channel="C0OPEN")
    slack.wait_for(lambda: slack.of("views.publish"), 10)
    assert [e.name for e in strict_bot.runtime.platform.list_endpoints()] == ["someones"]
    sender.button(ActionId.DELETE_ENDPOINT, "someones", user="U0ADMIN", channel="C0OPEN")
    slack.wait_for(lambda: not strict_bot.runtime.platform.list_endpoints(), 20)


def test_status_of_another_persons_job_shows_only_what_policy_lets_them_see(strict_bot, slack):
    record = job(strict_bot, requester="U0OWNER", channel="C0ML", error="salaries-2026.csv line 3: bad label")
    sender = SlackSender(strict_bot.url)
    outsider = sender.ask(f"status {record.id}", slack, user="U0USER", channel="C0OPEN")[0]["text"]
    assert "salaries" not in outsider and "there is no job" in outsider
    assert "salaries-2026.csv" in sender.ask(f"status {record.id}", slack, user="U0OWNER", channel="C0OPEN")[0]["text"]
    assert "salaries-2026.csv" in sender.ask(f"status {record.id}", slack, user="U0USER", channel="C0ML")[0]["text"]

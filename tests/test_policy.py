"""The access policy: defaults, the YAML file, and enforcement on every Slack entry point."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from handlers import policy
from handlers.errors import UserError
from handlers.jobs import cancel_job
from handlers.policy import AccessDenied, Action, Actor, Policy, load_policy
from platforms.base import JobState
from tests.slack_standin import SlackSender, SlackStandIn
from tests.bot_server import BotServer
from workers.ledger import JobRecord, Ledger, ReplyTarget, new_job_id


def test_default_lets_everyone_search_try_evaluate_and_nobody_spend():
    rules = Policy(admins=["U0ADMIN"])
    someone = Actor(user="U0USER", channel="C0CHAN")
    for action in (Action.SEARCH, Action.TRY, Action.EVALUATE):
        assert rules.allows(someone, action)
    for action in (Action.FINETUNE, Action.DEPLOY, Action.IMPORT, Action.CANCEL_OTHERS):
        assert not rules.allows(someone, action)
        assert rules.allows(Actor(user="U0ADMIN"), action)
    with pytest.raises(AccessDenied) as refused:
        rules.require(someone, Action.FINETUNE)
    assert str(refused.value) == ("you are not allowed to fine-tune models here. "
                                  "Ask an fmbot admin to allow it: <@U0ADMIN>")


def test_rules_match_users_groups_and_channels(tmp_path: Path):
    path = tmp_path / "policy.yaml"
    path.write_text("admins: [U0BOSS]\nallow:\n  finetune: {groups: ['@ml-team'], channels: [C0ML]}\n"
                    "  deploy: {users: [U0DEP]}\n  evaluate: {channels: [C0ML]}\n")
    rules = load_policy(path, ["U0ENV", " "])
    assert rules.admins == ["U0BOSS", "U0ENV"]
    assert rules.allows(Actor(user="U1", groups=["S1", "@ml-team"]), Action.FINETUNE)
    assert rules.allows(Actor(user="U1", channel="C0ML"), Action.FINETUNE)
    assert not rules.allows(Actor(user="U1", channel="C0OTHER"), Action.FINETUNE)
    assert rules.allows(Actor(user="U0DEP"), Action.DEPLOY) and not rules.allows(Actor(user="U0DEP"), Action.IMPORT)
    assert not rules.allows(Actor(user="U1", channel="C0OTHER"), Action.EVALUATE), "a named rule narrows a default"


@pytest.mark.parametrize("content, expected", [
    ("allow: {finetune: {users: U1}}", "is not a valid access policy"),
    ("allow: {fly: {everyone: true}}", "is not a valid access policy"),
    ("admins: [U1", "is not a valid access policy"),
    ("admin: [U1]", "is not a valid access policy"),
    ("allow: {deploy: {user: [U1]}}", "is not a valid access policy"),
])
def test_a_broken_policy_file_stops_start_up(tmp_path: Path, content: str, expected: str):
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(UserError, match=expected):
        load_policy(path)
    with pytest.raises(UserError, match="does not exist"):
        load_policy(tmp_path / "missing.yaml")


@pytest.fixture
def usergroups() -> list[dict]:
    """Slack's user groups as the bot lists them when it starts (a test may parametrize them)."""
    return []


@pytest.fixture
def strict_bot(slack_settings: Settings, slack: SlackStandIn, usergroups: list[dict], tmp_path: Path) -> Iterator[BotServer]:
    slack.usergroups = usergroups
    path = tmp_path / "policy.yaml"
    path.write_text("allow:\n  finetune: {groups: ['@ml-team'], channels: [C0ML]}\n"
                    "  cancel_others: {users: [U0ONCALL]}\n")
    server = BotServer(slack_settings.replace(fmbot_policy=path, fmbot_admins="U0ADMIN"))
    yield server
    server.close()
    policy.install(policy.Policy())


def test_slack_refusal_is_ephemeral_and_names_who_grants(strict_bot, slack: SlackStandIn):
    sender = SlackSender(strict_bot.url)
    response = sender.command("finetune", user="U0USER", channel="C0CHAN")
    assert response.status_code == 200
    assert response.json() == {"response_type": "ephemeral",
                               "text": ":no_entry: you are not allowed to fine-tune models here. "
                                       "Ask an fmbot admin to allow it: <@U0ADMIN>"}
    time.sleep(0.5)
    assert not slack.of("views.open")
    assert sender.ask("search", slack, user="U0USER")[0]["response_type"] == "ephemeral"


@pytest.mark.parametrize("user, channel, usergroups", [
    ("U0ADMIN", "C0CHAN", []),
    ("U0USER", "C0ML", []),
    ("U0USER", "C0CHAN", [{"id": "S0ML", "handle": "ml-team", "users": ["U0USER"]}]),
])
def test_slack_allows_admins_channels_and_groups(strict_bot, slack: SlackStandIn, user, channel, usergroups):
    SlackSender(strict_bot.url).command("finetune", user=user, channel=channel)
    slack.wait_for(lambda: slack.of("views.open"), timeout=10)


def test_card_button_is_refused_next_to_the_button(strict_bot, slack: SlackStandIn):
    payload = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": "U0USER"},
               "api_app_id": "A0001", "trigger_id": "t.1", "channel": {"id": "C0CHAN"},
               "container": {"type": "message", "channel_id": "C0CHAN"},
               "actions": [{"action_id": "card_finetune", "value": "tiny-bert:1", "type": "button"}]}
    assert SlackSender(strict_bot.url).interaction(payload).status_code == 200
    refusal = slack.wait_for(lambda: slack.of("chat.postEphemeral"), timeout=10)[0]
    assert refusal.params["user"] == "U0USER" and "fine-tune" in refusal.params["text"]
    assert "<@U0ADMIN>" in refusal.params["text"]
    assert not slack.of("views.open")


def someone_elses_job(strict_bot: BotServer) -> JobRecord:
    record = JobRecord(id=new_job_id("finetune"), kind="finetune", model="m:1", task="text-classification",
                       spec={}, requester="U0OWNER", reply_to=ReplyTarget(channel="C0CHAN"))
    return Ledger(strict_bot.runtime.redis).create(record)


def test_cancelling_others_jobs_is_the_policys_call(strict_bot, slack: SlackStandIn):
    record = someone_elses_job(strict_bot)
    rt = strict_bot.runtime
    with pytest.raises(UserError) as refused:
        cancel_job(rt, record.id, "U0USER")
    assert "started by someone else (<@U0OWNER>)" in str(refused.value) and "<@U0ADMIN>" in str(refused.value)
    assert rt.ledger.get(record.id).state == JobState.QUEUED
    answer = SlackSender(strict_bot.url).ask(f"cancel {record.id}", slack, user="U0USER")[0]
    assert "started by someone else (<@U0OWNER>)" in json.dumps(answer)
    assert cancel_job(rt, record.id, "U0ONCALL").state == JobState.CANCELED


def test_user_group_lookups_never_wait_on_slack_in_the_ack_path(strict_bot, slack: SlackStandIn):
    """Once listed, a stale listing is refreshed in the background: a slow usergroups.list (held
    here) does not hold up the answer, and a failing one is tried once per period, not per request."""
    sender = SlackSender(strict_bot.url)
    groups_of = policy._groups_of
    # The first listing has been stored (not only asked for): marked stale before it lands, it
    # would land fresh and no refresh would follow.
    slack.wait_for(lambda: groups_of.listed.is_set() and not groups_of._refreshing.locked(), timeout=60)
    groups_of.loaded_at -= groups_of.ttl + 1  # the listing has gone stale
    release = slack.hold("usergroups.list")
    try:
        started = time.monotonic()
        assert sender.command("finetune", user="U0USER", channel="C0CHAN").status_code == 200
        answered = time.monotonic() - started
    finally:
        release.set()
        slack.held.clear()
    assert answered < 2, f"the ack waited {answered:.1f}s on usergroups.list"
    slack.wait_for(lambda: not groups_of._refreshing.locked() and len(slack.of("usergroups.list")) == 2, timeout=60)
    slack.fail_next_of("usergroups.list", 400, 400, 400)
    groups_of.loaded_at -= groups_of.ttl + 1
    for _ in range(3):
        sender.command("finetune", user="U0USER", channel="C0CHAN")
    time.sleep(0.5)
    assert len([c for c in slack.calls if c.method.startswith("usergroups.list")]) == 3, "one failed call, cached"

"""Teams over real HTTP: Activities posted to /api/messages, replies caught by a Bot Connector stand-in.

Tokens come from a local OpenID metadata stand-in, the bot's own token from a managed identity
stand-in through MSAL, every card is checked against the Adaptive Card 1.5 schema and Teams' size
limit. No MagicMock anywhere: the SDK's hosting, connector client and MSAL all run as they do in
production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.settings import Settings  # noqa: E402
from bot.teams.ids import Verb  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import APP_ID, IDENTITY_HEADER, TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402
from workers import keys  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")
BOB = TeamsUser("bbbbbbbb-0000-4000-8000-000000000002", "Bob Example")


@pytest.fixture
def teams(monkeypatch: pytest.MonkeyPatch) -> Iterator[TeamsStandIn]:
    standin = TeamsStandIn().start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", standin.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    yield standin
    standin.stop()
    assert standin.problems == [], "a card broke the Adaptive Card 1.5 schema or Teams' limits"


@pytest.fixture
def teams_settings(settings: Settings, teams: TeamsStandIn) -> Settings:
    return settings.replace(teams_app_id=APP_ID, teams_auth_type="user_managed_identity",
                            teams_openid_metadata_url=teams.metadata_url, teams_file_hosts="127.0.0.1")


@pytest.fixture
def teams_bot(teams_settings: Settings) -> Iterator[TeamsBotServer]:
    server = TeamsBotServer(teams_settings)
    yield server
    server.close()


def card_text(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False)


@pytest.mark.parametrize("case", ["forged", "expired", "missing", "other-audience", "other-service-url"])
def test_a_request_without_a_valid_token_gets_401_and_nothing_runs(teams_bot, teams: TeamsStandIn, case):
    sender = TeamsSender(teams_bot.url, teams, ALICE)
    token = {"forged": teams.channel_token(forged=True), "expired": teams.channel_token(expired=True),
             "missing": None, "other-audience": teams.channel_token(audience="someone-else"),
             "other-service-url": teams.channel_token(service_url="https://attacker.example/")}[case]
    response = sender.message("jobs", token=token)
    assert response.status_code == 401
    assert teams.calls == []
    assert teams_bot.runtime.redis.get(keys.teams_conversation(sender.conversation)) is None
    assert sender.message("jobs").status_code in (200, 202)  # the same request with a good token runs
    teams.wait_for(lambda: teams.of("reply"))


def test_help_typos_and_channel_mentions_come_from_the_registry(teams_bot, teams: TeamsStandIn):
    personal = TeamsSender(teams_bot.url, teams, ALICE)
    assert personal.message("help").status_code in (200, 202)
    help_card = teams.wait_for(lambda: teams.of("reply"))[0].cards[0]
    assert "finetune [model]" in card_text(help_card) and "search <words> [task:<task>]" in card_text(help_card)

    personal.message("finetnue")
    typo = teams.wait_for(lambda: teams.of("reply")[1:])[0]
    assert "is not an fmbot command" in typo.activity["text"] and "finetune [model]" in typo.activity["text"]

    channel = TeamsSender(teams_bot.url, teams, BOB, conversation="19:abc@thread.tacv2;messageid=1",
                          conversation_type="channel")
    channel.message("<at>fmbot</at> jobs")
    answer = teams.wait_for(lambda: teams.of("reply")[2:])[0]
    assert answer.conversation == "19:abc@thread.tacv2;messageid=1"
    assert answer.activity["text"] == "You have no jobs yet."
    assert answer.headers["Authorization"].startswith("Bearer "), "the connector got the bot's own token"


def test_serve_refuses_to_start_without_credentials_unless_dev(settings: Settings):
    from bot.teams.serve import serve_teams
    from handlers.errors import UserError

    with pytest.raises(UserError, match="TEAMS_APP_ID is not set"):
        serve_teams(settings, None, host="127.0.0.1", port=0, dev=False)
    with pytest.raises(UserError, match="TEAMS_APP_SECRET is not set"):
        serve_teams(settings.replace(teams_app_id=APP_ID), None, host="127.0.0.1", port=0, dev=False)


def test_dev_mode_answers_without_tokens(settings: Settings):
    standin = TeamsStandIn(require_auth=False).start()
    server = TeamsBotServer(settings, dev=True)
    try:
        sender = TeamsSender(server.url, standin, ALICE)
        assert sender.message("help", token=None).status_code in (200, 202)
        reply = standin.wait_for(lambda: standin.of("reply"))[0]
        assert "Authorization" not in reply.headers
    finally:
        server.close()
        standin.stop()
    assert standin.problems == []

"""The deploy and import dialogs in Teams over real HTTP: opened from a message's card, every
refusal shown on the card under the input it is about, and a good submit starting the job."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.settings import Settings  # noqa: E402
from bot.teams.ids import Input, Verb  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn, TeamsUser, card_problems  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")


@pytest.fixture
def teams_bot(teams_settings: Settings) -> Iterator[TeamsBotServer]:
    server = TeamsBotServer(teams_settings)
    yield server
    server.close()


def dialog_card(response) -> dict:
    assert response.status_code == 200, response.text
    task = response.json()["task"]
    assert task["type"] == "continue", task
    return task["value"]["card"]["content"]


def error_under(card: dict, input_id: str) -> str | None:
    """The server's complaint shown right below an input, if any."""
    body = card["body"]
    index = next(i for i, e in enumerate(body) if e.get("id") == input_id)
    after = body[index + 1] if index + 1 < len(body) else {}
    return after.get("text") if after.get("color") == "Attention" else None


def inputs(card: dict) -> dict[str, dict]:
    return {e["id"]: e for e in card["body"] if str(e.get("type", "")).startswith("Input.")}


def offered_dialog(sender: TeamsSender, teams: TeamsStandIn, text: str) -> dict:
    before = len(teams.of("reply"))
    sender.message(text)
    offer = teams.wait_for(lambda: teams.of("reply")[before:])[0].cards[0]
    return dialog_card(sender.task_fetch(offer["actions"][0]["data"]))


def test_deploy_dialog_shows_each_refusal_on_its_input_and_starts_the_deployment(teams_bot, teams: TeamsStandIn,
                                                                                tiny_model):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    card = offered_dialog(alice, teams, f"deploy {tiny_model}")
    fields = inputs(card)
    assert [c["value"] for c in fields[Input.DEPLOY_KIND]["choices"]] == ["managed"], "no serverless for a local model"
    assert [c["value"] for c in fields[Input.COMPUTE]["choices"]][0] == "cpu"
    assert fields[Input.INSTANCES]["max"] == 8 and Input.CONTENT_FILTER not in fields

    bad_name = dialog_card(alice.task_submit(card, {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "9lives",
                                                    Input.COMPUTE: "cpu", Input.INSTANCES: 1}))
    assert "not a valid endpoint name" in error_under(bad_name, Input.ENDPOINT)
    assert inputs(bad_name)[Input.ENDPOINT]["value"] == "9lives", "what the user typed stays on the card"

    too_many = dialog_card(alice.task_submit(card, {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "tiny-dialog",
                                                    Input.COMPUTE: "cpu", Input.INSTANCES: 9}))
    assert "instances must be 1 to 8" in error_under(too_many, Input.INSTANCES)
    assert error_under(too_many, Input.ENDPOINT) is None

    no_vm = dialog_card(alice.task_submit(card, {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "tiny-dialog",
                                                 Input.INSTANCES: 1}))
    assert "Choose a VM size" in error_under(no_vm, Input.COMPUTE)
    assert Ledger(teams_bot.runtime.redis).recent() == [], "no refused submit started anything"

    done = alice.task_submit(card, {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "tiny-dialog",
                                    Input.COMPUTE: "cpu", Input.INSTANCES: 1}).json()["task"]
    assert done["type"] == "message" and done["value"].startswith(f"Deploying {tiny_model} to tiny-dialog")
    [record] = Ledger(teams_bot.runtime.redis).recent()
    assert record.kind == "deploy" and record.spec["endpoint"] == "tiny-dialog" and record.spec["compute"] == "cpu"
    assert record.requester == ALICE.aad_object_id and record.reply_to.surface == "teams"
    teams.wait_for(lambda: [c for c in teams.of("send") if record.id in json.dumps(c.cards)])
    assert teams.problems == []


def test_import_dialog_shows_each_refusal_on_its_input_and_starts_the_import(teams_bot, teams: TeamsStandIn):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    card = offered_dialog(alice, teams, "import google-bert/bert-base-uncased")
    fields = inputs(card)
    assert fields[Input.MODEL_ID]["value"] == "google-bert/bert-base-uncased"
    assert "fill-mask" in [c["value"] for c in fields[Input.TASK]["choices"]]

    bad_id = dialog_card(alice.task_submit(card, {Input.MODEL_ID: "not a model id", Input.TASK: "fill-mask"}))
    assert error_under(bad_id, Input.MODEL_ID) and error_under(bad_id, Input.TASK) is None
    bad_task = dialog_card(alice.task_submit(card, {Input.MODEL_ID: "google-bert/bert-base-uncased",
                                                    Input.TASK: "text-to-speech"}))
    assert error_under(bad_task, Input.TASK) and error_under(bad_task, Input.MODEL_ID) is None
    assert Ledger(teams_bot.runtime.redis).recent() == []

    done = alice.task_submit(card, {Input.MODEL_ID: "google-bert/bert-base-uncased", Input.TASK: "fill-mask",
                                    Input.LICENSE: "apache-2.0"}).json()["task"]
    assert done["type"] == "message" and done["value"].startswith("Importing google-bert/bert-base-uncased as job ")
    [record] = Ledger(teams_bot.runtime.redis).recent()
    assert record.spec["license"] == "apache-2.0" and record.reply_to.surface == "teams"
    assert teams.problems == []


def test_serverless_is_offered_only_where_the_model_card_says_so():
    from bot.teams.views.deploy import deploy_dialog
    from platforms.base import ComputeOption, ModelCard

    options = [ComputeOption(name=f"Standard_NC{i}", label=f"Standard_NC{i} · {i} free") for i in range(3)]
    model = ModelCard(name="Phi-3-mini", version="1", tasks=["text-generation"], serverless=True)
    card = deploy_dialog(model, options, {}, {})
    assert [c["value"] for c in inputs(card)[Input.DEPLOY_KIND]["choices"]] == ["serverless", "managed"]
    assert inputs(card)[Input.CONTENT_FILTER]["value"] == "true"
    assert card["actions"][0]["data"] == {"verb": Verb.DEPLOY, "model": model.ref}
    assert card_problems(card, "deploy dialog") == []
    managed_only = deploy_dialog(model.model_copy(update={"serverless": False}), options, {}, {})
    assert Input.CONTENT_FILTER not in inputs(managed_only)
    assert card_problems(managed_only, "deploy dialog") == []


def test_a_teams_endpoint_lives_as_long_as_asked_and_its_warning_offers_keep_and_delete(
        teams_settings: Settings, teams: TeamsStandIn, tiny_model, start_worker):
    """Warned 10.8 s before the end of a 21.6 s life; Keep adds 10.8 s, for the owner only."""
    from tests.test_costs_e2e import stop_endpoints
    from workers import keys

    settings = teams_settings.replace(fmbot_ttl_warning_hours=0.003, fmbot_ttl_extension_hours=0.003)
    bot = TeamsBotServer(settings)
    try:
        start_worker(settings)
        alice = TeamsSender(bot.url, teams, ALICE)
        card = offered_dialog(alice, teams, f"deploy {tiny_model}")
        assert inputs(card)[Input.TTL]["type"] == "Input.Text"
        values = {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "teams-ttl", Input.COMPUTE: "cpu", Input.INSTANCES: 1}
        bad = dialog_card(alice.task_submit(card, {**values, Input.TTL: "soon"}))
        assert '"soon" is not a time to live' in error_under(bad, Input.TTL)
        done = alice.task_submit(card, {**values, Input.TTL: "0.006h"}).json()["task"]
        assert done["type"] == "message" and "Deploying" in done["value"], done

        warning = teams.wait_for(lambda: [c for c in teams.of("reply")
                                          if "reaches the end of its time to live" in json.dumps(c.cards)], 180)[0]
        notice = warning.cards[0]
        assert [a["title"] for a in notice["actions"]] == ["Keep 0.003 h more", "Delete now"]
        assert next(r for r in Ledger(bot.runtime.redis).recent() if r.kind == "deploy").spec["ttl_hours"] == 0.006

        bob = TeamsSender(bot.url, teams, TeamsUser("bbbbbbbb-0000-4000-8000-000000000002", "Bob Example"),
                          conversation="a:personal-bob")
        before = json.loads(bot.runtime.redis.get(keys.lease("teams-ttl")))["expires_at"]
        refused = bob.execute(Verb.KEEP_ENDPOINT, {"endpoint": "teams-ttl"}).json()
        assert "deployed by someone else" in refused["value"], refused
        assert "deployed by someone else" in bob.execute(Verb.DELETE_ENDPOINT, {"endpoint": "teams-ttl"}).json()["value"]
        kept = alice.execute(Verb.KEEP_ENDPOINT, {"endpoint": "teams-ttl"}).json()
        assert "teams-ttl is kept until" in kept["value"], kept
        assert json.loads(bot.runtime.redis.get(keys.lease("teams-ttl")))["expires_at"] > before
        deleted = alice.execute(Verb.DELETE_ENDPOINT, {"endpoint": "teams-ttl"}).json()
        assert deleted["value"] == "Deleted endpoint teams-ttl.", deleted
        assert bot.runtime.platform.list_endpoints() == [] and not bot.runtime.redis.exists(keys.lease("teams-ttl"))
        assert teams.problems == []
    finally:
        stop_endpoints(bot)
        bot.close()

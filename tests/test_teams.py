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
from tests.helpers import wait_until  # noqa: E402
from tests.teams_standin import APP_ID, TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402
from workers import keys  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")
BOB = TeamsUser("bbbbbbbb-0000-4000-8000-000000000002", "Bob Example")


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


def test_every_command_the_registry_offers_in_teams_has_a_room():
    from bot.teams.commands import ROOMS
    from handlers.registry import Surface, on

    assert sorted(ROOMS) == sorted(c.name for c in on(Surface.TEAMS))


def test_serve_refuses_to_start_without_credentials_unless_dev(settings: Settings):
    from bot.teams.serve import serve_teams
    from handlers.errors import UserError

    with pytest.raises(UserError, match="TEAMS_APP_ID is not set"):
        serve_teams(settings, None, host="127.0.0.1", port=0, dev=False)
    with pytest.raises(UserError, match="TEAMS_APP_SECRET is not set"):
        serve_teams(settings.replace(teams_app_id=APP_ID), None, host="127.0.0.1", port=0, dev=False)


def test_dev_mode_answers_and_posts_without_tokens(settings: Settings, tiny_model):
    """`--dev` with an app id but no secret: no token is asked of the caller nor sent by the bot,
    in answers and in the worker-side job cards alike."""
    standin = TeamsStandIn(require_auth=False).start()
    server = TeamsBotServer(settings.replace(teams_app_id=APP_ID), dev=True)
    try:
        sender = TeamsSender(server.url, standin, ALICE)
        assert sender.message("help", token=None).status_code in (200, 202)
        reply = standin.wait_for(lambda: standin.of("reply"))[0]
        assert "Authorization" not in reply.headers
        _start_job(server, sender, tiny_model)
        card = standin.wait_for(lambda: standin.of("send"))[0]
        assert "Authorization" not in card.headers and "queued" in card_text(card.cards)
    finally:
        server.close()
        standin.stop()
    assert standin.problems == []


def _start_job(bot: TeamsBotServer, sender: TeamsSender, model: str, **request) -> str:
    """A fine-tune recorded and announced for the sender's conversation, as the dialog's last step does."""
    from bot.demo import DATA as DEMO
    from handlers.finetune import FinetuneRequest, start_finetune
    from platforms.base import DataRef, FinetuneSpec
    from platforms.tasks import Task
    from workers.ledger import ReplyTarget

    record = start_finetune(bot.runtime, FinetuneRequest(spec=FinetuneSpec(
        model=model, task=Task.TEXT_CLASSIFICATION, train=DataRef(path=str(DEMO / "train.jsonl"), name="train.jsonl"),
        mapping={"sentence1": "review", "label": "sentiment"}, **request),
        requester=sender.user.aad_object_id, reply_to=ReplyTarget(channel=sender.conversation, surface="teams")))
    return record.id


def test_cancel_button_is_for_the_requester_and_updates_the_card(teams_bot, teams: TeamsStandIn, tiny_model):
    alice, bob = TeamsSender(teams_bot.url, teams, ALICE), TeamsSender(teams_bot.url, teams, BOB)
    alice.message("help")
    teams.wait_for(lambda: teams.of("reply"))
    job = _start_job(teams_bot, alice, tiny_model)
    card = teams.wait_for(lambda: teams.of("send"))[0]
    assert card.cards[0]["actions"][0]["verb"] == Verb.CANCEL_JOB

    refused = bob.execute(Verb.CANCEL_JOB, {"job": job}).json()
    assert refused["type"] == "application/vnd.microsoft.activity.message"
    assert "started by someone else" in refused["value"]
    assert Ledger(teams_bot.runtime.redis).get(job).state == "queued"

    done = alice.execute(Verb.CANCEL_JOB, {"job": job}).json()
    assert done["statusCode"] == 200 and done["value"] == f"Canceled {job}."
    update = teams.wait_for(lambda: teams.of("update"))[0]
    assert update.activity_id == card.result_id and "canceled" in card_text(update.cards[0])
    assert Ledger(teams_bot.runtime.redis).get(job).state == "canceled"


def test_policy_and_approvals_use_entra_ids(teams_settings: Settings, teams: TeamsStandIn, tiny_model, tmp_path):
    rules = tmp_path / "policy.yaml"
    rules.write_text(f"allow:\n  finetune: {{users: [{ALICE.aad_object_id}]}}\n"
                     f"  approve: {{users: [{BOB.aad_object_id}]}}\n")
    bot = TeamsBotServer(teams_settings.replace(fmbot_policy=rules, fmbot_approval_gpu_hours=1.0))
    try:
        alice, bob = TeamsSender(bot.url, teams, ALICE), TeamsSender(bot.url, teams, BOB)
        refused = bob.task_fetch({"verb": Verb.OPEN_FORM, "kind": "finetune", "model": ""}).json()
        assert refused["task"]["type"] == "message" and "not allowed to fine-tune" in refused["task"]["value"]
        assert alice.task_fetch({"verb": Verb.OPEN_FORM, "kind": "finetune", "model": ""}).json()["task"]["type"] \
            == "continue"

        job = _start_job(bot, alice, tiny_model, compute="cuda:0")
        pending = teams.wait_for(lambda: teams.of("send"))[0].cards[0]
        assert [a["title"] for a in pending["actions"]] == ["Approve", "Reject"]
        own = alice.execute(Verb.APPROVE_JOB, {"job": job}).json()
        assert "not allowed to approve" in own["value"]
        approved = bob.execute(Verb.APPROVE_JOB, {"job": job}).json()
        assert approved["value"] == f"Approved {job}; it is queued."
        record = Ledger(bot.runtime.redis).get(job)
        assert record.approval == "approved" and record.approved_by == BOB.aad_object_id
        assert "Cancel" in card_text(teams.wait_for(lambda: teams.of("update"))[-1].cards[0])
    finally:
        bot.close()


def test_deploy_from_a_card_and_the_key_only_for_its_owner(teams_bot, teams: TeamsStandIn, teams_settings,
                                                           tiny_model, start_worker):
    import requests

    from handlers.deploy import delete_endpoint

    start_worker(teams_settings)
    alice, bob = TeamsSender(teams_bot.url, teams, ALICE), TeamsSender(teams_bot.url, teams, BOB)
    alice.message("help")
    bob.message("help")
    teams.wait_for(lambda: teams.of("reply")[1:])
    dialog = alice.task_fetch({"verb": Verb.OPEN_FORM, "kind": "deploy", "model": tiny_model}).json()
    started = alice.task_submit(dialog["task"]["value"]["card"]["content"],
                                {"deploy_kind": "managed", "endpoint": "tiny-teams", "compute": "cpu", "instances": 1})
    assert started.json()["task"]["value"].startswith(f"Deploying {tiny_model} to tiny-teams")
    try:
        deployed = teams.wait_for(lambda: [c for c in teams.of("reply") if "Endpoint tiny-teams" in card_text(c.cards)],
                                  timeout=120)[0].cards[0]
        assert deployed["refresh"]["userIds"] == [ALICE.mri]
        owner_view = alice.execute(Verb.SHOW_KEY, {"endpoint": "tiny-teams"}, trigger="automatic").json()
        assert owner_view["type"] == "application/vnd.microsoft.card.adaptive"
        key = next(f["value"] for e in owner_view["value"]["body"] if e["type"] == "FactSet" for f in e["facts"])
        assert key not in json.dumps([c.activity for c in teams.calls]), "the key never went into the conversation"
        url = owner_view["value"]["body"][1]["text"]
        scored = requests.post(url, json={"input_data": ["what a lovely film"]},
                               headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert scored.status_code == 200, scored.text

        others_view = bob.execute(Verb.SHOW_KEY, {"endpoint": "tiny-teams"}, trigger="automatic").json()
        assert key not in json.dumps(others_view)
        assert "Only whoever deployed" in bob.execute(Verb.SHOW_KEY, {"endpoint": "tiny-teams"}).json()["value"]

        again = alice.execute(Verb.SHOW_KEY, {"endpoint": "tiny-teams"}, trigger="automatic").json()
        assert key not in json.dumps(again) and "rotate-key tiny-teams" in json.dumps(again), "a key is handed over once"
        alice.message("rotate-key tiny-teams")
        rotated_card = teams.wait_for(lambda: [c for c in teams.of("reply") if c.cards and "Endpoint tiny-teams"
                                               in card_text(c.cards)][1:], timeout=60)[0].cards[0]
        assert rotated_card["refresh"]["userIds"] == [ALICE.mri]
        new_view = alice.execute(Verb.SHOW_KEY, {"endpoint": "tiny-teams"}, trigger="automatic").json()
        new_key = next(f["value"] for e in new_view["value"]["body"] if e["type"] == "FactSet" for f in e["facts"])
        assert new_key != key and new_key not in json.dumps([c.activity for c in teams.calls])
        assert requests.post(url, json={"input_data": ["fine"]}, headers={"Authorization": f"Bearer {key}"},
                             timeout=30).status_code == 401
        assert requests.post(url, json={"input_data": ["fine"]}, headers={"Authorization": f"Bearer {new_key}"},
                             timeout=30).status_code == 200
    finally:
        delete_endpoint(teams_bot.runtime, "tiny-teams", ALICE.aad_object_id)


def test_a_job_started_in_teams_reports_to_teams_after_the_bot_restarts(teams_settings: Settings, teams: TeamsStandIn,
                                                                        tiny_model, start_worker):
    """The worker posts from the conversation reference in Redis: the bot that took the request is
    gone (and a new one started) before any worker picks the job up."""
    first = TeamsBotServer(teams_settings)
    alice = TeamsSender(first.url, teams, ALICE)
    alice.message("help")
    teams.wait_for(lambda: teams.of("reply"))
    job = _start_job(first, alice, tiny_model, hyperparameters={"epochs": 1})
    card = teams.wait_for(lambda: teams.of("send"))[0]
    first.close()
    second = TeamsBotServer(teams_settings)
    try:
        start_worker(teams_settings)
        metrics = teams.wait_for(lambda: [c for c in teams.of("reply") if "Metrics of" in card_text(c.cards)],
                                 timeout=180)[0]
        assert metrics.activity_id == card.result_id
        assert Ledger(second.runtime.redis).get(job).reply_to.thread_ts == card.result_id
        assert "completed" in card_text(teams.of("update")[-1].cards[0])
    finally:
        second.close()


def test_a_teams_outage_delays_the_card_and_a_refusal_drops_it(teams_bot, teams: TeamsStandIn, tiny_model):
    """503s keep the notice in the outbox for a later attempt (nothing posted twice); a 4xx the
    connector answers would be the same next time, so that notice is dropped at once."""
    from workers import outbox

    alice = TeamsSender(teams_bot.url, teams, ALICE)
    alice.message("help")
    teams.wait_for(lambda: teams.of("reply"))
    teams.failures = [503]
    job = _start_job(teams_bot, alice, tiny_model)
    waiting = outbox.pending(teams_bot.runtime.redis, job)
    assert len(waiting) == 1 and waiting[0].attempts == 1 and waiting[0].done == 0
    assert teams.of("send") == []
    assert outbox.drain(teams_bot.runtime.redis, teams_bot.runtime.notifier, job)
    assert len(teams.of("send")) == 1 and outbox.pending(teams_bot.runtime.redis, job) == []

    teams.failures = [400]
    other = _start_job(teams_bot, alice, tiny_model)
    assert outbox.pending(teams_bot.runtime.redis, other) == []
    assert len(teams.of("send")) == 1, "the refused card is not retried"


def test_try_and_import_answer_as_messages(teams_bot, teams: TeamsStandIn, tiny_model, teams_settings, start_worker):
    worker = start_worker(teams_settings)  # its try service answers the try
    assert wait_until(lambda: teams_bot.runtime.redis.exists(keys.try_alive()), 60)
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    alice.message("try tiny-bert what a lovely film")

    def messages() -> list:
        """Replies, without the typing indicator the SDK sends while a slow turn (a cold load) runs."""
        return [call for call in teams.of("reply") if call.activity.get("type") == "message"]

    answer = teams.wait_for(messages, timeout=60)[0].activity["text"]
    assert answer.startswith("**tiny-bert:1** (text-classification) on your text") and '"label"' in answer
    worker.stop()  # the import below stays queued

    alice.message("import google-bert/bert-base-uncased")
    offer = teams.wait_for(lambda: messages()[1:])[0].cards[0]
    assert "import <hf-model-id> [task]" in card_text(offer)
    assert offer["actions"][0]["data"]["kind"] == "import", "without a task, the import dialog is offered"
    alice.message("import google-bert/bert-base-uncased fill-mask")
    started = teams.wait_for(lambda: messages()[2:])[0].activity["text"]
    job = started.split(" as job ")[1].split(":")[0]
    card = teams.wait_for(lambda: teams.of("send"))[0]
    assert f"Import {job} — queued" in card_text(card.cards[0])
    assert Ledger(teams_bot.runtime.redis).get(job).reply_to.surface == "teams"


def test_a_dialog_trusts_nothing_the_client_sends_back_but_inputs(teams_bot, teams: TeamsStandIn, tiny_model,
                                                                 tmp_path):
    """The card's data passes through the user's client: a state smuggled into it (here naming a
    file on the bot's disk) is ignored, and someone else's form id is refused."""
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"sentence1": "the admin password is hunter2", "label": "x"}\n' * 20)
    alice, bob = TeamsSender(teams_bot.url, teams, ALICE), TeamsSender(teams_bot.url, teams, BOB)
    fetched = alice.task_fetch({"verb": Verb.OPEN_FORM, "kind": "finetune", "model": tiny_model}).json()
    card = fetched["task"]["value"]["card"]["content"]
    assert set(card["actions"][0]["data"]) == {"verb", "form"}

    smuggled = {"state": {"kind": "finetune", "model": tiny_model, "task": "text-classification",
                          "train": {"path": str(secret), "name": "secret.jsonl"}, "mapping": {"sentence1": "sentence1",
                                                                                            "label": "label"}}}
    forged = dict(card)
    forged["actions"] = [{**card["actions"][0], "data": {**card["actions"][0]["data"], "verb": Verb.FORM_COMPUTE,
                                                        **smuggled}}]
    answer = alice.task_submit(forged, {"compute": "cpu", "instances": 1, "epochs": 1, "batch_size": 16}).json()
    assert answer["task"] == {"type": "message", "value": "This form step is out of order; open the form again."}
    assert "hunter2" not in json.dumps(answer)
    assert Ledger(teams_bot.runtime.redis).recent() == [], "no job was started from a smuggled state"

    stolen = bob.task_submit(card, {"model": tiny_model, "task": "text-classification"}).json()
    assert stolen["task"] == {"type": "message", "value": "⚠️ this form was opened by someone else. "
                                                          "Open your own from the card"}

"""Teams file consent over real HTTP: an evaluation's predictions sent to the user's OneDrive.

The bot offers the file with a FileConsentCard in a personal chat, Teams answers with a
`fileConsent/invoke`, the bot PUTs the bytes into the OneDrive upload session and posts a
FileInfoCard. The card, the invokes and the upload answers are the published examples
(tests/data/teams/SOURCES.md); the connector and OneDrive stand-ins record what the bot sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.teams.ids import Verb  # noqa: E402
from tests.onedrive_standin import OneDriveStandIn, published  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn  # noqa: E402
from tests.test_teams import ALICE, BOB, teams_bot  # noqa: E402,F401  (the fixture)
from workers.ledger import JobRecord, ReplyTarget, new_job_id  # noqa: E402

CONSENT = "application/vnd.microsoft.teams.card.file.consent"
INFO = "application/vnd.microsoft.teams.card.file.info"
ROWS = [{"input": "a lovely film", "reference": "positive", "prediction": "positive"},
        {"input": "dull, and too long", "reference": "negative", "prediction": "positive"},
        {"input": "café au lait ☕", "reference": "positive", "prediction": "negative"}]


@pytest.fixture
def onedrive() -> Iterator[OneDriveStandIn]:
    standin = OneDriveStandIn().start()
    yield standin
    standin.stop()


def _evaluation(bot, sender: TeamsSender) -> str:
    """A completed evaluation of the sender's, reporting to the sender's chat, with its scored rows."""
    record = bot.runtime.ledger.create(JobRecord(
        id=new_job_id("evaluate"), kind="evaluate", state="completed", model="tiny-bert:1",
        task="text-classification", spec={}, requester=sender.user.aad_object_id, metrics={"accuracy": 1 / 3},
        rows=ROWS, reply_to=ReplyTarget(channel=sender.conversation, surface="teams")))
    return record.id


def _expected(job: str) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in ROWS).encode()


def _attachments(teams: TeamsStandIn, content_type: str) -> list[dict[str, Any]]:
    return [a for c in teams.calls for a in c.activity.get("attachments") or [] if a.get("contentType") == content_type]


def _texts(teams: TeamsStandIn) -> list[str]:
    return [c.activity.get("text") or "" for c in teams.calls]


def _offer(teams_bot, teams: TeamsStandIn, sender: TeamsSender) -> tuple[str, dict[str, Any]]:
    job = _evaluation(teams_bot, sender)
    sender.message(f"status {job}")
    status = teams.wait_for(lambda: [c for c in teams.of("reply") if c.cards])[0].cards[0]
    button = next(a for a in status["actions"] if a["title"] == "Download predictions")
    answer = sender.execute(button["verb"], button["data"]).json()
    assert answer["statusCode"] == 200 and "Accept the file card" in answer["value"]
    return job, teams.wait_for(lambda: _attachments(teams, CONSENT))[0]


def _answer(sender: TeamsSender, action: str, context: Any, upload_info: dict[str, Any] | None = None):
    invoke = published(f"file-consent-invoke-{action}.json")
    value = {**invoke["value"], "context": context}
    if upload_info is not None:
        value["uploadInfo"] = upload_info
    return sender.invoke(invoke["name"], value)


def test_accepted_predictions_are_uploaded_to_onedrive_and_shown_as_a_file_card(teams_bot, teams: TeamsStandIn,
                                                                                onedrive: OneDriveStandIn):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    job, card = _offer(teams_bot, teams, alice)
    shape = published("file-consent-card.json")["attachments"][0]
    assert set(card) == set(shape) and set(card["content"]) == set(shape["content"])
    assert {k: type(v) for k, v in card["content"].items()} == {k: type(v) for k, v in shape["content"].items()}
    assert card["name"] == f"{job}-predictions.jsonl" and card["content"]["sizeInBytes"] == len(_expected(job))
    assert card["content"]["acceptContext"]["job"] == job and "path" not in json.dumps(card)

    info = onedrive.upload_info(card["name"])
    accepted = _answer(alice, "accept", card["content"]["acceptContext"], info)
    assert accepted.status_code == 200
    assert onedrive.uploaded(info) == _expected(job)
    assert all("Authorization" not in put.headers for put in onedrive.puts)
    file_card = teams.wait_for(lambda: _attachments(teams, INFO))[0]
    published_card = published("file-info-card.json")["attachments"][0]
    assert set(file_card) == set(published_card) and set(file_card["content"]) == set(published_card["content"])
    assert file_card["contentUrl"] == info["contentUrl"] and file_card["name"] == card["name"]
    assert file_card["content"] == {"uniqueId": info["uniqueId"], "fileType": "jsonl"}

    puts = len(onedrive.puts)
    replayed = _answer(alice, "accept", card["content"]["acceptContext"], onedrive.upload_info(card["name"]))
    assert replayed.status_code == 200 and len(onedrive.puts) == puts, "an answered card uploads nothing more"
    assert "already answered" in teams.wait_for(lambda: [t for t in _texts(teams) if "already answered" in t])[0]


def test_a_declined_file_is_not_sent(teams_bot, teams: TeamsStandIn, onedrive: OneDriveStandIn):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    job, card = _offer(teams_bot, teams, alice)
    declined = _answer(alice, "decline", card["content"]["declineContext"])
    assert declined.status_code == 200
    said = teams.wait_for(lambda: [t for t in _texts(teams) if t.startswith("Not sent")])[0]
    assert job in said and onedrive.puts == []


def test_someone_elses_answer_to_the_card_is_refused_and_uploads_nothing(teams_bot, teams: TeamsStandIn,
                                                                        onedrive: OneDriveStandIn):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    job, card = _offer(teams_bot, teams, alice)
    context = card["content"]["acceptContext"]
    for bob in (TeamsSender(teams_bot.url, teams, BOB, conversation="a:personal-bob"),
                TeamsSender(teams_bot.url, teams, BOB)):  # in his own chat, and posing in Alice's
        assert _answer(bob, "accept", context, onedrive.upload_info(card["name"])).status_code == 200
    refusals = teams.wait_for(lambda: [t for t in _texts(teams) if "offered to someone else" in t][1:])
    assert onedrive.puts == [] and all("nothing was sent" in t for t in refusals)
    forged = _answer(alice, "accept", {"offer": "made-up", "job": job}, onedrive.upload_info(card["name"]))
    assert forged.status_code == 200 and onedrive.puts == []
    teams.wait_for(lambda: [t for t in _texts(teams) if "not made by fmbot" in t])

    info = onedrive.upload_info(card["name"])
    assert _answer(alice, "accept", context, info).status_code == 200
    assert onedrive.uploaded(info) == _expected(job), "the refusals left Alice's offer to her"


def test_in_a_channel_the_button_says_to_ask_in_a_personal_chat(teams_bot, teams: TeamsStandIn):
    channel = TeamsSender(teams_bot.url, teams, ALICE, conversation="19:abc@thread.tacv2;messageid=1",
                          conversation_type="channel")
    job = _evaluation(teams_bot, channel)
    answer = channel.execute(Verb.JOB_PREDICTIONS, {"job": job}).json()
    assert "only in a personal chat" in answer["value"] and f"status {job}" in answer["value"]
    assert _attachments(teams, CONSENT) == []


def test_the_upload_puts_byte_ranges_as_the_session_asks(onedrive: OneDriveStandIn):
    from bot.teams.consent import upload

    content = bytes(range(256)) * 5
    info = onedrive.upload_info("big.bin")
    item = upload(info["uploadUrl"], content, chunk=300)
    assert onedrive.uploaded(info) == content and item["size"] == len(content)
    assert [p.content_range for p in onedrive.puts] == ["bytes 0-299/1280", "bytes 300-599/1280",
                                                        "bytes 600-899/1280", "bytes 900-1199/1280",
                                                        "bytes 1200-1279/1280"]
    assert [p.status for p in onedrive.puts] == [202, 202, 202, 202, 201]


def test_a_finished_evaluation_offers_its_predictions_and_sends_them(teams_bot, teams: TeamsStandIn, teams_settings,
                                                                     onedrive: OneDriveStandIn, tiny_model,
                                                                     start_worker):
    """A real evaluation on a real worker: its metrics reply carries the button, and what reaches
    OneDrive is the rows the worker scored."""
    from bot.demo import DATA as DEMO
    from handlers.evaluate import EvaluateRequest, start_evaluation
    from platforms.base import DataRef, EvaluateSpec
    from platforms.tasks import Task

    alice = TeamsSender(teams_bot.url, teams, ALICE)
    alice.message("help")
    teams.wait_for(lambda: teams.of("reply"))
    job = start_evaluation(teams_bot.runtime, EvaluateRequest(
        spec=EvaluateSpec(model=tiny_model, task=Task.TEXT_CLASSIFICATION,
                          test=DataRef(path=str(DEMO / "test.jsonl"), name="test.jsonl"),
                          mapping={"sentence1": "review", "label": "sentiment"}),
        requester=ALICE.aad_object_id, reply_to=ReplyTarget(channel=alice.conversation, surface="teams"))).id
    start_worker(teams_settings)
    metrics = teams.wait_for(lambda: [c for c in teams.of("reply") if "Metrics of" in json.dumps(c.cards)],
                             timeout=180)[0].cards[0]
    button = next(a for a in metrics["actions"] if a["title"] == "Download predictions")
    assert button["data"] == {"job": job}
    alice.execute(button["verb"], button["data"])
    card = teams.wait_for(lambda: _attachments(teams, CONSENT))[0]
    info = onedrive.upload_info(card["name"])
    assert _answer(alice, "accept", card["content"]["acceptContext"], info).status_code == 200
    sent = [json.loads(line) for line in onedrive.uploaded(info).decode().splitlines()]
    rows = teams_bot.runtime.ledger.get(job).rows
    assert sent == [{k: row[k] for k in ("input", "reference", "prediction")} for row in rows] and len(sent) > 1
    teams.wait_for(lambda: _attachments(teams, INFO))


def test_the_manifest_lets_the_bot_send_files():
    """Without `supportsFiles` Teams shows no consent card and sends no fileConsent/invoke."""
    from pathlib import Path

    manifest = json.loads((Path(__file__).resolve().parents[1] / "deploy" / "teams" / "manifest.json").read_text())
    assert all(bot["supportsFiles"] is True for bot in manifest["bots"])


@pytest.mark.parametrize("value", [{"action": "accept", "context": "not-a-dict", "uploadInfo": {"uploadUrl": 7}},
                                   {"action": "accept", "context": [1, 2], "uploadInfo": "garbage"},
                                   {"action": "decline", "context": None}])
def test_a_malformed_answer_is_refused_and_the_bot_goes_on(teams_bot, teams: TeamsStandIn, onedrive, value):
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    answered = alice.invoke("fileConsent/invoke", {"type": "fileUpload", **value})
    assert answered.status_code == 200 and onedrive.puts == []
    teams.wait_for(lambda: [t for t in _texts(teams) if "nothing was sent" in t])
    assert alice.message("jobs").status_code in (200, 202)
    teams.wait_for(lambda: [t for t in _texts(teams) if t == "You have no jobs yet."])


def test_an_upload_link_off_the_file_hosts_gets_nothing(teams_bot, teams: TeamsStandIn, onedrive: OneDriveStandIn):
    """The same OneDrive stand-in named `localhost`, which TEAMS_FILE_HOSTS (127.0.0.1 here) does not list."""
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    _, card = _offer(teams_bot, teams, alice)
    info = onedrive.upload_info(card["name"])
    info["uploadUrl"] = info["uploadUrl"].replace("127.0.0.1", "localhost")
    assert _answer(alice, "accept", card["content"]["acceptContext"], info).status_code == 200
    teams.wait_for(lambda: [t for t in _texts(teams) if "no upload link on OneDrive or SharePoint" in t])
    assert onedrive.puts == []

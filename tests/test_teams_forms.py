"""The Teams job dialogs with files shared in a personal chat, and with a file too big to check
within Teams' invoke timeout: the step answers "checking…" at once and its Continue button brings
the next step once the background check is done."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.demo import DATA as DEMO_DATA  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.teams.ids import NOT_USED, Input, Verb  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402
from tests.test_e2e_teams import dialog_card, open_dialog, selects  # noqa: E402
from tests.helpers import SLOW_SECONDS, slowed  # noqa: E402
from tests.test_teams_deploy import error_under, offered_dialog  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")
BOB = TeamsUser("bbbbbbbb-0000-4000-8000-000000000002", "Bob Example")
BUDGET = 0.005  # seconds a step may take before it answers "checking…"


@pytest.fixture
def teams_bot(teams_settings: Settings) -> Iterator[TeamsBotServer]:
    server = TeamsBotServer(teams_settings, invoke_budget=BUDGET)
    yield server
    server.close()


def share(sender: TeamsSender, teams: TeamsStandIn, attachment: dict) -> None:
    before = len(teams.of("reply"))
    sender.message("", attachments=[attachment])
    teams.wait_for(lambda: teams.of("reply")[before:])


def data_values(model: str, file_id: str) -> dict:
    return {"model": model, "task": "text-classification", "train": file_id, "train_asset": "",
            "validation": NOT_USED, "validation_split": 0, "test": NOT_USED, "test_split": 20}


def is_checking(card: dict) -> bool:
    return card["actions"][0]["data"]["verb"] == Verb.FORM_RESUME


def answered(sender: TeamsSender, card: dict, timeout: float = 60) -> dict:
    """Press Continue on a "checking…" card until the dialog answers: the task (the next card or a
    closing message)."""
    deadline = time.monotonic() + timeout
    task = {"type": "continue", "value": {"card": {"content": card}}}
    while task["type"] == "continue" and is_checking(task["value"]["card"]["content"]):
        assert time.monotonic() < deadline, "the background check never finished"
        time.sleep(0.2)
        response = sender.task_submit(task["value"]["card"]["content"], {})
        assert response.status_code == 200, response.text
        task = response.json()["task"]
    return task


def continue_until_ready(sender: TeamsSender, card: dict, timeout: float = 60) -> dict:
    task = answered(sender, card, timeout)
    assert task["type"] == "continue", task
    return task["value"]["card"]["content"]


def test_a_file_too_big_to_check_in_the_budget_answers_at_once_and_continues(teams_bot, teams: TeamsStandIn,
                                                                             teams_settings, tiny_model, tmp_path):
    from platforms.base import DataRef
    from platforms.datasets import ColumnMapping
    from handlers.data import check_data
    from platforms.tasks import Task

    rows = (DEMO_DATA / "train.jsonl").read_bytes().splitlines(keepends=True)
    big = b"".join(rows * (160_000 // len(rows) + 1))
    local = tmp_path / "big.jsonl"
    local.write_bytes(big)
    started = time.monotonic()
    check_data(DataRef(path=str(local), name="big.jsonl"),
               ColumnMapping.build({"sentence1": "review", "label": "sentiment"}, Task.TEXT_CLASSIFICATION),
               max_bytes=teams_settings.max_upload_bytes)
    check_seconds = time.monotonic() - started
    assert check_seconds > 5 * BUDGET, f"the file must take longer to check than the budget ({check_seconds:.2f}s)"

    alice = TeamsSender(teams_bot.url, teams, ALICE)
    share(alice, teams, teams.share_file("big.jsonl", big))
    data_card = open_dialog(alice, teams, f"finetune {tiny_model.split(':')[0]}")
    file_id = next(c["value"] for e in data_card["body"] if e.get("id") == "train" for c in e["choices"])
    mapping_card = continue_until_ready(alice, dialog_card(alice.task_submit(data_card, data_values(tiny_model,
                                                                                                    file_id))))
    assert selects(mapping_card)["map.label"] == "sentiment"

    started = time.monotonic()
    checking = dialog_card(alice.task_submit(mapping_card, selects(mapping_card)))
    answered_in = time.monotonic() - started
    assert is_checking(checking) and "Checking big.jsonl" in checking["body"][1]["text"]
    assert "compute" not in {e.get("id") for e in checking["body"]}

    refused = TeamsSender(teams_bot.url, teams, BOB).task_submit(checking, {}).json()["task"]
    assert refused == {"type": "message", "value": "⚠️ this form was opened by someone else. "
                                                   "Open your own from the card"}
    compute_card = continue_until_ready(alice, checking)
    assert {e.get("id") for e in compute_card["body"]} >= {Input.COMPUTE, Input.INSTANCES}
    print(f"check of {len(big) / 1e6:.1f} MB: {check_seconds:.2f}s; the invoke answered in {answered_in:.2f}s")

    again = alice.task_submit(checking, {}).json()["task"]
    assert again["type"] == "message" and "Nothing is being checked" in again["value"]
    assert teams.problems == []


def test_files_shared_in_a_personal_chat_are_offered_and_a_foreign_link_is_refused_on_its_input(
        teams_bot, teams: TeamsStandIn, tiny_model):
    """Teams sends a personal chat's file as `file.download.info` (the manifest's supportsFiles); an
    attachment without a download link is not a file, and a link to a host that is not SharePoint
    (here: not the configured hosts) is refused when the form would download it."""
    alice = TeamsSender(teams_bot.url, teams, ALICE)
    assert alice.conversation_type == "personal"
    rows = b"".join((DEMO_DATA / "train.jsonl").read_bytes().splitlines(keepends=True)[:50])
    good = teams.share_file("reviews.jsonl", rows)
    assert "etag" not in good["content"], "a client that sends no etag still gets its file read"
    share(alice, teams, good)
    share(alice, teams, {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": "evil.jsonl",
                         "content": {"downloadUrl": "https://evil.example/evil.jsonl", "uniqueId": "evil-1",
                                     "fileType": "jsonl", "etag": "1"}})
    alice.message("", attachments=[{"contentType": "application/vnd.microsoft.teams.file.download.info",
                                    "name": "broken.jsonl", "content": {"uniqueId": "broken"}}])

    data_card = open_dialog(alice, teams, f"finetune {tiny_model.split(':')[0]}")
    offered = {c["title"].split(" (")[0]: c["value"] for e in data_card["body"] if e.get("id") == "train"
               for c in e["choices"]}
    assert set(offered) == {"reviews.jsonl", "evil.jsonl"}

    refused = continue_until_ready(alice, dialog_card(alice.task_submit(data_card, data_values(
        tiny_model, offered["evil.jsonl"]))))
    assert "points at evil.example" in error_under(refused, "train")
    mapping_card = continue_until_ready(alice, dialog_card(alice.task_submit(refused, data_values(
        tiny_model, offered["reviews.jsonl"]))))
    assert selects(mapping_card)["map.sentence1"] == "review"
    assert teams.problems == []


def test_a_slow_quota_check_and_endpoint_list_answer_the_deploy_invoke_within_its_budget(
        teams_settings: Settings, teams: TeamsStandIn, tiny_model, monkeypatch):
    """A deploy's checks (quota, the endpoints there already) are remote calls on Azure ML: made
    4 s each here, the invoke still answers within its budget (1 s here, for a quick test) with
    "checking…", and Continue brings the refusal under its input, or the deployment's start, once."""
    server = TeamsBotServer(teams_settings, invoke_budget=1.0)
    try:
        alice = TeamsSender(server.url, teams, ALICE)
        card = offered_dialog(alice, teams, f"deploy {tiny_model}")
        slowed(monkeypatch, server.runtime.platform, "check_quota", "list_endpoints")
        ledger = Ledger(server.runtime.redis)
        values = {Input.DEPLOY_KIND: "managed", Input.ENDPOINT: "slow-dialog", Input.COMPUTE: "cpu"}

        def submitted(instances: int, what: str) -> dict:
            started = time.monotonic()
            answer = dialog_card(alice.task_submit(card, {**values, Input.INSTANCES: instances}))
            seconds = time.monotonic() - started
            print(f"Teams deploy {what}: invoke answered in {seconds:.2f} s with {SLOW_SECONDS:g} s checks behind it")
            assert seconds < 3 and is_checking(answer), f"the invoke waited {seconds:.1f}s for the checks"
            return answer

        again = continue_until_ready(alice, submitted(2, "over quota"), timeout=4 * SLOW_SECONDS + 30)
        assert "the local platform runs one instance, not 2" in error_under(again, Input.INSTANCES)
        assert ledger.recent() == []

        checking = submitted(1, "within quota")
        bob = TeamsSender(server.url, teams, BOB)
        assert "opened by someone else" in bob.task_submit(checking, {}).json()["task"]["value"]
        done = answered(alice, checking, timeout=4 * SLOW_SECONDS + 30)
        assert done["type"] == "message" and done["value"].startswith(f"Deploying {tiny_model} to slow-dialog")
        assert "Nothing is being checked" in alice.task_submit(checking, {}).json()["task"]["value"]
        (record,) = ledger.recent()
        assert record.kind == "deploy" and record.spec["endpoint"] == "slow-dialog"
    finally:
        server.close()

"""End to end in Teams with real parts: a user fine-tunes MiniLM from the dialog, an RQ worker process
trains it, the job card is updated in place through the Bot Connector stand-in and the metrics
card arrives; a job started in Slack runs beside one started in Teams, each reporting home."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.demo import DATA as DEMO_DATA  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.teams.ids import NOT_USED, Verb  # noqa: E402
from tests.helpers import DATA
from tests.conftest import teams_fields
from tests.slack_standin import SlackSender, SlackStandIn  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402
from tests.test_e2e_slack import compute_values, walk_to_compute_step  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")


def selects(card: dict) -> dict[str, str | None]:
    return {e["id"]: e.get("value") for e in card["body"] if e.get("type") == "Input.ChoiceSet"}


def dialog_card(response) -> dict:
    assert response.status_code == 200, response.text
    task = response.json()["task"]
    assert task["type"] == "continue", task
    return task["value"]["card"]["content"]


def open_dialog(sender: TeamsSender, teams: TeamsStandIn, text: str) -> dict:
    before = len(teams.of("reply"))
    sender.message(text)
    offer = teams.wait_for(lambda: [c for c in teams.of("reply")[before:] if c.cards])[0].cards[0]  # not the typing indicator
    button = offer["actions"][0]
    assert button["data"]["msteams"] == {"type": "task/fetch"}
    return dialog_card(sender.task_fetch(button["data"]))


def walk_to_compute(sender: TeamsSender, teams: TeamsStandIn, model: str, train: bytes, name: str) -> dict:
    sender.message("", attachments=[teams.share_file(name, train)])
    teams.wait_for(lambda: [c for c in teams.of("reply") if name in json.dumps(c.activity)])
    data_card = open_dialog(sender, teams, f"finetune {model.split(':')[0]}")
    assert selects(data_card)["model"] == model
    file_id = next(c["value"] for e in data_card["body"] if e.get("id") == "train" for c in e["choices"])
    mapping_card = dialog_card(sender.task_submit(data_card, {
        "model": model, "task": "text-classification", "train": file_id, "train_asset": "",
        "validation": NOT_USED, "validation_split": 0, "test": NOT_USED, "test_split": 20}))
    return mapping_card


def test_teams_user_finetunes_minilm_from_the_dialog(settings: Settings, teams: TeamsStandIn, start_worker):
    settings = settings.replace(fmbot_seed_models=True, **teams_fields(teams))
    bot = TeamsBotServer(settings)
    try:
        worker = start_worker(settings)
        sender = TeamsSender(bot.url, teams, ALICE)
        train = b"".join((DEMO_DATA / "train.jsonl").read_bytes().splitlines(keepends=True)[:200])
        mapping_card = walk_to_compute(sender, teams, "all-MiniLM-L6-v2:1", train, "reviews.jsonl")
        preselected = selects(mapping_card)
        assert preselected == {"map.sentence1": "review", "map.sentence2": NOT_USED, "map.label": "sentiment"}
        compute_card = dialog_card(sender.task_submit(mapping_card, preselected))
        compute = next(e for e in compute_card["body"] if e.get("id") == "compute")
        assert [c["value"] for c in compute["choices"]][0] == "cpu"
        assert "Estimate (" in json.dumps(compute_card)

        done = sender.task_submit(compute_card, {"compute": "cpu", "instances": 1, "epochs": 2,
                                                 "learning_rate": 0.0002, "batch_size": 16})
        assert done.json()["task"]["type"] == "message" and "Started ft-" in done.json()["task"]["value"]

        first = teams.wait_for(lambda: teams.of("send"))[0]
        assert "queued" in json.dumps(first.cards[0])
        metrics = teams.wait_for(lambda: [c for c in teams.of("send") + teams.of("reply")
                                          if "Metrics of" in json.dumps(c.cards)], timeout=300)[0]
        table = next(e for e in metrics.cards[0]["body"] if e["type"] == "Table")
        names = [row["cells"][0]["items"][0]["text"] for row in table["rows"][1:]]
        assert "accuracy" in names and "f1_score_macro" in names

        records = Ledger(bot.runtime.redis).recent()
        assert len(records) == 1 and records[0].state == "completed", worker.output()
        record = records[0]
        assert record.reply_to.surface == "teams" and record.requester == ALICE.aad_object_id
        assert 0.5 <= record.metrics["accuracy"] <= 1.0
        ids = {c.cards[0]["body"][0]["text"]: c for c in teams.of("send")}
        assert first is teams.of("send")[0] and len(teams.of("send")) == 1, f"one card per job, not {list(ids)}"
        assert metrics.verb == "reply" and metrics.activity_id == record.reply_to.thread_ts, "results reply under the card"
        assert metrics.cards[0]["body"][-1]["type"] == "Image", "the loss curve is on the metrics card"
        updates = [c for c in teams.of("update")]
        assert updates, "the job card is updated in place"
        assert {u.activity_id for u in updates} == {record.reply_to.thread_ts} == {first.result_id}
        final = updates[-1].cards[0]
        assert "completed" in json.dumps(final)
        assert [a["title"] for a in final["actions"]] == ["Evaluate", "Register", "Deploy", "Compare with base"]
        assert any("progress" in json.dumps(u.cards) for u in updates), "a running card shows its progress bar"

        started = sender.execute(Verb.COMPARE_BASE, {"job": record.id}).json()
        assert "Comparing the base and the fine-tuned model as cmp-" in started["value"], started
        ranked = teams.wait_for(lambda: [c for c in teams.of("reply") if "Flips" in json.dumps(c.cards)], timeout=300)[0]
        flips = json.dumps(ranked.cards[0])
        assert "all-MiniLM-L6-v2:1" in flips and record.output_model in flips and "rows:" in flips
        comparison = next(r for r in Ledger(bot.runtime.redis).recent(limit=5) if r.kind == "compare")
        assert comparison.state == "completed" and comparison.reply_to.surface == "teams", comparison.error
        assert teams.problems == []
    finally:
        bot.close()


def test_bad_rows_are_shown_on_the_dialog_and_nothing_is_queued(settings: Settings, teams: TeamsStandIn, tiny_model):
    settings = settings.replace(**teams_fields(teams))
    bot = TeamsBotServer(settings)
    try:
        sender = TeamsSender(bot.url, teams, ALICE)
        bad = b'{"text": "fine", "label": "POSITIVE"}\n{"text": "bad", "label": "NEGATIVE"}\n{"text": "odd"}\n'
        mapping_card = walk_to_compute(sender, teams, tiny_model, bad, "train.jsonl")
        again = dialog_card(sender.task_submit(mapping_card, selects(mapping_card)))
        assert again["body"][1]["id"] == "formError"
        assert 'train.jsonl line 3: column "label" is missing' in again["body"][1]["text"]
        assert again["actions"][0]["data"]["verb"] == Verb.FORM_MAPPING
        assert Ledger(bot.runtime.redis).recent() == []
        assert teams.of("send") == []
    finally:
        bot.close()


def test_jobs_started_in_slack_and_in_teams_run_side_by_side(slack_settings: Settings, slack: SlackStandIn,
                                                            teams: TeamsStandIn, tiny_model, bot, start_worker):
    settings = slack_settings.replace(**teams_fields(teams))
    teams_bot = TeamsBotServer(settings)
    try:
        start_worker(settings)
        start_worker(settings)
        upload = slack.add_file("sst2.jsonl", (DATA / "sst2_small_validation.jsonl").read_bytes())
        slack_sender = SlackSender(bot.url)
        slack_compute = walk_to_compute_step(slack_sender, slack, tiny_model, upload)

        sender = TeamsSender(teams_bot.url, teams, ALICE)
        mapping_card = walk_to_compute(sender, teams, tiny_model, (DATA / "sst2_small_validation.jsonl").read_bytes(),
                                       "sst2.jsonl")
        compute_card = dialog_card(sender.task_submit(mapping_card, selects(mapping_card)))
        sender.task_submit(compute_card, {"compute": "cpu", "instances": 1, "epochs": 1, "learning_rate": 0.001,
                                          "batch_size": 16})
        assert slack_sender.view_submission(slack_compute, compute_values()).status_code == 200

        slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if "Metrics" in c.params.get("text", "")],
                       timeout=180)
        teams.wait_for(lambda: [c for c in teams.of("send") + teams.of("reply") if "Metrics of" in json.dumps(c.cards)],
                       timeout=180)
        records = {r.reply_to.surface: r for r in Ledger(bot.runtime.redis).recent()}
        assert set(records) == {"slack", "teams"}
        assert all(r.state == "completed" for r in records.values())
        assert not [c for c in slack.calls if records["teams"].id in json.dumps(c.params)], "no Teams job in Slack"
        assert not [c for c in teams.calls if records["slack"].id in json.dumps(c.activity)], "no Slack job in Teams"
    finally:
        teams_bot.close()

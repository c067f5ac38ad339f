"""Comparisons, leaderboards and registered datasets in Teams, with real parts: messages and dialogs
posted over HTTP to `/api/messages`, real RQ workers evaluating tiny models, the comparison's card
and ranked reply going out through the Bot Connector stand-in (which checks schema 1.5 and size)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("microsoft_agents.hosting.aiohttp")

from bot.settings import Settings  # noqa: E402
from bot.teams.ids import NOT_USED, Input, Verb  # noqa: E402
from handlers.data import register_dataset  # noqa: E402
from tests.teams_bot import TeamsBotServer  # noqa: E402
from tests.teams_standin import TeamsSender, TeamsStandIn, TeamsUser  # noqa: E402
from tests.test_compare import SST2, add_models, comparison_record  # noqa: E402
from tests.test_e2e_teams import dialog_card, open_dialog, selects  # noqa: E402
from workers.ledger import Ledger  # noqa: E402

ALICE = TeamsUser("aaaaaaaa-0000-4000-8000-000000000001", "Alice Example")


def texts(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False)


def press(sender: TeamsSender, card: dict, title: str, inputs: dict):
    """Press the dialog card's button titled `title` (Teams merges the inputs into its data)."""
    button = next(a for a in card["actions"] if a["title"] == title)
    return sender.invoke("task/submit", {"data": {**button["data"], **inputs}, "context": {"theme": "default"}})


def answer_card(sender: TeamsSender, teams: TeamsStandIn, text: str) -> dict:
    before = len(teams.of("reply"))
    sender.message(text)
    return teams.wait_for(lambda: [c for c in teams.of("reply")[before:] if c.cards])[0].cards[0]


def table_rows(card: dict) -> list[list[str]]:
    table = next(e for e in card["body"] if e["type"] == "Table")
    return [[cell["items"][0]["text"] for cell in row["cells"]] for row in table["rows"]]


def test_teams_compare_of_three_models_one_failing_from_a_registered_dataset(teams_settings: Settings,
                                                                             teams: TeamsStandIn, start_worker):
    models = add_models(Path(teams_settings.fmbot_models_dir))
    bot = TeamsBotServer(teams_settings)
    try:
        start_worker(teams_settings), start_worker(teams_settings)
        register_dataset(bot.runtime, "sst2", SST2, requester=ALICE.aad_object_id)
        sender = TeamsSender(bot.url, teams, ALICE)
        named = [models["good"], models["other"], models["broken"], models["wrong"]]

        data_card = open_dialog(sender, teams, "compare " + " ".join(named))
        assert data_card["body"][0]["text"] == "Compare models"
        assert all(m in texts(data_card) for m in named) and "model" not in selects(data_card)
        assert "sst2:1" in [c["value"] for e in data_card["body"] if e.get("id") == Input.DATASET for c in e["choices"]]

        mapping_card = dialog_card(sender.task_submit(data_card, {
            "task": "text-classification", "test": NOT_USED, "test_asset": "", Input.DATASET: "sst2:1"}))
        assert "Preview of" in texts(mapping_card), "the preview of the registered dataset is on the mapping step"
        assert f"Left out {models['wrong']}" in texts(mapping_card)
        compute_card = dialog_card(sender.task_submit(mapping_card, selects(mapping_card)))
        assert f"Left out {models['wrong']}" in texts(compute_card) and "Estimate (" in texts(compute_card)
        done = sender.task_submit(compute_card, {"compute": "cpu", "instances": 1, "batch_size": 16}).json()
        assert done["task"]["type"] == "message" and "Started cmp-" in done["task"]["value"], done

        reply = teams.wait_for(lambda: [c for c in teams.of("reply")
                                        if "Comparison cmp-" in texts(c.cards)], timeout=240)[0]
        result = reply.cards[0]
        header, *rows = table_rows(result)
        assert header[:3] == ["#", "model", "accuracy"] and "95% CI" in header
        assert [row[0] for row in rows] == ["1", "2", "—"] and rows[2][1] == models["broken"] and rows[2][2] == "failed"
        assert float(rows[0][2]) >= float(rows[1][2])
        assert f"{models['broken']} failed" in texts(result) and "Where they disagree" in texts(result)
        assert [a["title"] for a in result["actions"]] == ["Fine-tune the best", "Deploy the best", "Sort", "Re-run"]
        sort_by = next(e for e in result["body"] if e.get("id") == Input.SORT_BY)
        assert sort_by["value"] == "accuracy" and len(sort_by["choices"]) > 1
        chart = next(e for e in result["body"] if e["type"] == "Image")
        assert chart["url"].startswith("data:image/png;base64,iVBOR") and len(chart["url"]) > 5000

        record = next(r for r in Ledger(bot.runtime.redis).recent(limit=10) if r.kind == "compare")
        assert record.state == "completed" and record.output_model == rows[0][1]
        assert record.reply_to.surface == "teams" and reply.activity_id == record.reply_to.thread_ts
        cards_sent = [c for c in teams.of("send") if record.id in texts(c.cards)]
        assert len(cards_sent) == 1, "one card for the whole comparison"
        updates = [u for u in teams.of("update") if u.activity_id == record.reply_to.thread_ts]
        assert any(models["good"] in texts(u.cards) and "running" in texts(u.cards) for u in updates)
        final = texts(updates[-1].cards)
        assert "completed" in final and f"Left out: {models['wrong']}" in final and "failed" in final
        assert all(m in final for m in named[:3])

        board = answer_card(sender, teams, "leaderboard text-classification")
        ranked = [row[1] for row in table_rows(board)[1:]]
        best = {row[1] for row in rows[:2] if float(row[2]) == float(rows[0][2])}  # a tie ranks the newest result first
        assert set(ranked) == {models["good"], models["other"]} and ranked[0] in best

        listing = answer_card(sender, teams, "data")
        assert "Registered datasets: 1" in texts(listing) and "**sst2** v1" in texts(listing)
        details = answer_card(sender, teams, "data show sst2")
        assert {f["title"]: f["value"] for f in details["body"][1]["facts"]}["Rows"] == f"{len(SST2.read_bytes().splitlines()):,}"

        other = next(c["value"] for c in sort_by["choices"] if c["value"] != "accuracy")
        resorted = sender.execute(Verb.COMPARE_SORT, {"comparison": record.id, Input.SORT_BY: other}).json()
        assert resorted["type"] == "application/vnd.microsoft.card.adaptive", resorted
        header, *sorted_rows = table_rows(resorted["value"])
        assert header[2] == other and "Ranked by " + other in texts(resorted["value"])
        ranked = [float(row[2]) for row in sorted_rows if row[0] != "—"]
        assert ranked == sorted(ranked, reverse=True) and sorted_rows[-1][1] == models["broken"]
        assert {row[1] for row in sorted_rows} == {row[1] for row in rows}
        stranger = TeamsSender(bot.url, teams, TeamsUser("cccccccc-0000-4000-8000-000000000003", "Carol Example"),
                               conversation="a:personal-carol")
        refused = stranger.execute(Verb.COMPARE_SORT, {"comparison": record.id, Input.SORT_BY: other}).json()
        assert refused["type"] == "application/vnd.microsoft.activity.message" and "no job" in refused["value"].lower()

        rerun = sender.execute(Verb.COMPARE_RERUN, {"comparison": record.id}).json()
        assert "Re-running as cmp-" in rerun["value"], rerun
        assert teams.problems == [], "every card is schema 1.5 and within Teams' size limit"
    finally:
        bot.close()


def test_bad_rows_in_the_teams_dialog_can_be_skipped_and_the_preview_says_so(teams_settings: Settings,
                                                                              teams: TeamsStandIn, tiny_model):
    settings = teams_settings.replace(fmbot_max_bad_rows_percent=10)
    bot = TeamsBotServer(settings)
    try:
        sender = TeamsSender(bot.url, teams, ALICE)
        good = SST2.read_bytes().splitlines(keepends=True)[:40]
        content = b"".join(good) + b'{"input_string": "no label"}\n'
        sender.message("", attachments=[teams.share_file("sst2-bad.jsonl", content)])
        teams.wait_for(lambda: [c for c in teams.of("reply") if "sst2-bad.jsonl" in texts(c.activity)])
        data_card = open_dialog(sender, teams, f"evaluate {tiny_model.split(':')[0]}")
        file_id = next(c["value"] for e in data_card["body"] if e.get("id") == "test" for c in e["choices"])
        mapping_card = dialog_card(sender.task_submit(data_card, {
            "model": tiny_model, "task": "text-classification", "test": file_id, "test_asset": "",
            Input.DATASET: NOT_USED}))
        assert "Preview of sst2-bad.jsonl**: 40 rows, 1 bad rows skipped" in texts(mapping_card)
        refused = dialog_card(sender.task_submit(mapping_card, selects(mapping_card)))
        assert refused["body"][1]["id"] == "formError" and "line 41" in refused["body"][1]["text"]
        assert [a["title"] for a in refused["actions"]] == ["Next", "Skip 1 rows and continue"]

        compute_card = dialog_card(press(sender, refused, "Skip 1 rows and continue", {}))
        assert compute_card["actions"][0]["data"]["verb"] == Verb.FORM_COMPUTE
        assert "1 bad rows skipped" in texts(compute_card) and "(40 rows" in texts(compute_card)
        done = sender.task_submit(compute_card, {"compute": "cpu", "instances": 1, "batch_size": 16}).json()
        assert "Started ev-" in done["task"]["value"], done
        record = Ledger(bot.runtime.redis).recent()[0]
        assert record.spec["rows"]["skip"] is True

        models = add_models(Path(settings.fmbot_models_dir))
        data_card = open_dialog(sender, teams, f"compare {models['good']} {models['other']}")
        mapping_card = dialog_card(sender.task_submit(data_card, {
            "task": "text-classification", "test": file_id, "test_asset": "", Input.DATASET: NOT_USED}))
        refused = dialog_card(sender.task_submit(mapping_card, selects(mapping_card)))
        assert "line 41" in refused["body"][1]["text"]
        assert [a["title"] for a in refused["actions"]] == ["Next"], "a comparison's evaluations read every row"
    finally:
        bot.close()


def test_eight_models_with_long_metric_names_keep_their_table_and_as_many_disagreements_as_fit():
    """(tests/test_teams_cards.py checks schema and size of these cards with the others.)"""
    from bot.teams.views.compare import chart, result_card

    record = comparison_record(8, metric_chars=120)
    result = result_card(record, chart(record))
    assert len(table_rows(result)) == 9 and len(table_rows(result)[0]) == 7
    assert "Where they disagree**: 321 of 500 rows, the first" in texts(result)
    assert 0 < len([e for e in result["body"] if e.get("text", "").startswith("Row ")]) <= 10


def test_models_ticked_on_a_teams_search_page_open_the_compare_card(teams_settings: Settings, teams: TeamsStandIn):
    """Teams sends a multi-select's ticked values joined by commas, with the button's own data."""
    models = add_models(Path(teams_settings.fmbot_models_dir))
    bot = TeamsBotServer(teams_settings)
    try:
        sender = TeamsSender(bot.url, teams, ALICE)
        page = answer_card(sender, teams, "search tiny")
        ticks = next(e for e in page["body"] if e.get("id") == Input.COMPARE_MODELS)
        assert ticks["isMultiSelect"] and {models["good"], models["other"]} <= {c["value"] for c in ticks["choices"]}
        (button,) = page["actions"]
        assert button["title"] == "Compare selected" and button["verb"] == Verb.COMPARE_PICKED

        before = len(teams.of("reply"))
        picked = sender.execute(Verb.COMPARE_PICKED, {**button["data"],
                                                      Input.COMPARE_MODELS: f"{models['good']},{models['other']}"})
        assert picked.json()["value"] == "The card is in the chat.", picked.text
        compare_card = teams.wait_for(lambda: [c for c in teams.of("reply")[before:] if c.cards])[0].cards[0]
        assert compare_card["body"][0]["text"] == "Compare 2 models"
        assert compare_card["actions"][0]["data"]["models"] == f"{models['good']} {models['other']}"

        one = sender.execute(Verb.COMPARE_PICKED, {**button["data"], Input.COMPARE_MODELS: models["good"]}).json()
        assert "name 2 to 8 models to compare, not 1" in one["value"], one
        assert teams.problems == []
    finally:
        bot.close()


def test_compare_buttons_in_a_shared_channel_need_the_policys_evaluate(teams_settings: Settings, teams: TeamsStandIn,
                                                                       tmp_path: Path):
    """Bob sees Alice's comparison in their channel (its thread is there), but the policy lets only Alice
    evaluate: Re-run, Compare with base and Compare selected each start evaluations, so they refuse him;
    Sort only shows what the channel already has."""
    from handlers.compare import CompareRequest, start_comparison
    from platforms.base import DataRef
    from platforms.datasets import ColumnMapping
    from platforms.tasks import Task
    from tests.test_teams import BOB
    from workers.ledger import ReplyTarget

    rules = tmp_path / "policy.yaml"
    rules.write_text(f"allow:\n  evaluate: {{users: [{ALICE.aad_object_id}]}}\n")
    models = add_models(Path(teams_settings.fmbot_models_dir))
    bot = TeamsBotServer(teams_settings.replace(fmbot_policy=rules))
    channel = "19:ml@thread.tacv2;messageid=7"
    try:
        record = start_comparison(bot.runtime, CompareRequest(
            models=[models["good"], models["other"]], task=Task.TEXT_CLASSIFICATION,
            test=DataRef(path=str(SST2), name=SST2.name),
            mapping=ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION),
            requester=ALICE.aad_object_id, reply_to=ReplyTarget(channel=channel, surface="teams")))
        alice = TeamsSender(bot.url, teams, ALICE, conversation=channel, conversation_type="channel")
        bob = TeamsSender(bot.url, teams, BOB, conversation=channel, conversation_type="channel")
        comparisons = lambda: [r.id for r in Ledger(bot.runtime.redis).recent(limit=20) if r.kind == "compare"]  # noqa: E731

        for verb, data in ((Verb.COMPARE_RERUN, {"comparison": record.id}), (Verb.COMPARE_BASE, {"job": record.id}),
                           (Verb.COMPARE_PICKED, {Input.COMPARE_MODELS: f"{models['good']},{models['other']}"})):
            refused = bob.execute(verb, data).json()
            assert "not allowed to evaluate models" in refused["value"], (verb, refused)
        assert comparisons() == [record.id], "Bob started nothing"

        rerun = alice.execute(Verb.COMPARE_RERUN, {"comparison": record.id}).json()
        assert "Re-running as cmp-" in rerun["value"], rerun
        assert len(comparisons()) == 2
    finally:
        bot.close()

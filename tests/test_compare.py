"""Comparisons: several models evaluated in parallel on the same rows, ranked in one record.

The statistics are unit-tested on small hand-made rows; the whole path runs twice end to end with
real RQ workers: once from the CLI (`--wait --json`), once from Slack over signed HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from platforms import comparison
from platforms.base import DataRef
from platforms.tasks import Task
from tests.conftest import DATA
from tests.helpers import final_record, fmbot_json
from tests.tiny_models import add_tiny_bert, add_tiny_classifier

SST2 = DATA / "sst2_small_validation.jsonl"
LABELS = ["NEGATIVE", "POSITIVE"]


def texts() -> list[str]:
    return [json.loads(line)["input_string"] for line in SST2.open()]


def add_models(models_dir: Path) -> dict[str, str]:
    """Two tiny classifiers that differ only by seed, one whose weights are gone (its evaluation
    fails) and one for another task (left out before anything runs)."""
    words = texts()
    good = add_tiny_classifier(models_dir, words, LABELS, name="tiny-a", seed=1)
    other = add_tiny_classifier(models_dir, words, LABELS, name="tiny-b", seed=5)
    broken = add_tiny_classifier(models_dir, words, LABELS, name="tiny-broken", seed=3)
    for weights in (models_dir / "tiny-broken" / broken.version).glob("*.safetensors"):
        weights.unlink()
    wrong = add_tiny_bert(models_dir, words, name="tiny-ner", tasks=(Task.TOKEN_CLASSIFICATION,))
    return {"good": good.ref, "other": other.ref, "broken": broken.ref, "wrong": wrong.ref}


# ------------------------------------------------------------------ statistics on hand-made rows


def rows(pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [{"input": f"row {i}", "reference": r, "prediction": p} for i, (r, p) in enumerate(pairs)]


def test_interval_brackets_the_metric_and_narrows_with_more_rows():
    few = rows([("a", "a")] * 7 + [("a", "b")] * 3)
    many = rows([("a", "a")] * 70 + [("a", "b")] * 30)
    assert comparison.statistic(Task.TEXT_CLASSIFICATION, few) == pytest.approx(0.7)
    low, high = comparison.bootstrap_interval(Task.TEXT_CLASSIFICATION, few)
    wide = high - low
    assert low <= 0.7 <= high and wide > 0.2
    low, high = comparison.bootstrap_interval(Task.TEXT_CLASSIFICATION, many)
    assert low <= 0.7 <= high and high - low < wide
    assert comparison.bootstrap_interval(Task.TEXT_CLASSIFICATION, few[:1]) is None


def test_corpus_metrics_are_recomputed_per_resample():
    tagged = rows([("B-PER O", "B-PER O"), ("O B-LOC", "O O"), ("B-ORG O", "B-ORG O"), ("O O", "O O")])
    assert comparison.statistic(Task.TOKEN_CLASSIFICATION, tagged) == pytest.approx(0.8)
    low, high = comparison.bootstrap_interval(Task.TOKEN_CLASSIFICATION, tagged)
    assert 0.0 <= low <= 0.8 <= high <= 1.0


def test_disagreements_and_flips_come_from_the_rows():
    before = rows([("pos", "pos"), ("neg", "pos"), ("neg", "neg"), ("pos", "neg")])
    after = rows([("pos", "neg"), ("neg", "neg"), ("neg", "neg"), ("pos", "pos")])
    found, total = comparison.disagreements(Task.TEXT_CLASSIFICATION, {"base": before, "tuned": after})
    assert total == 3 and [d.index for d in found] == [0, 1, 3]
    assert found[0].predictions == {"base": "pos", "tuned": "neg"} and found[0].reference == "pos"
    flips = comparison.flips(Task.TEXT_CLASSIFICATION, before, after)
    assert flips.gained == [1, 3] and flips.lost == [0] and flips.rows == 4
    answers = rows([("Paris | paris, France", "the Paris"), ("Rome", "Milan")])
    assert comparison.row_scores(Task.QUESTION_ANSWERING, answers) == [1.0, 0.0]


def test_primary_metrics_and_their_direction():
    assert comparison.primary_metric("question-answering") == "exact_match"
    assert comparison.primary_metric(Task.TRANSLATION) == "bleu_4"
    assert sorted([3.0, 9.0, 5.0], key=lambda v: comparison.better("perplexity", v), reverse=True)[0] == 3.0


# ------------------------------------------------------------------ end to end on the CLI


def test_compare_on_the_cli_ranks_the_models_and_fills_the_leaderboard(settings, start_worker):
    models = add_models(Path(settings.fmbot_models_dir))
    workers = [start_worker(settings), start_worker(settings)]
    record = fmbot_json(settings, "compare", models["good"], models["other"], models["broken"], models["wrong"],
                        "--task", "text-classification", "--test", str(SST2),
                        "--map", "sentence1=input_string,label=label_string", "--wait")
    assert record["state"] == "completed", record.get("error") or workers[0].output()[-3000:]
    assert list(record["result"]["left_out"]) == [models["wrong"]]
    assert "does not support text-classification" in record["result"]["left_out"][models["wrong"]]
    result = record["result"]["comparison"]
    standings = {s["model"]: s for s in result["standings"]}
    assert set(standings) == {models["good"], models["other"], models["broken"]}
    assert standings[models["broken"]]["state"] == "failed" and standings[models["broken"]]["rank"] is None
    assert standings[models["broken"]]["error"]
    ranked = [s for s in result["standings"] if s["rank"]]
    assert [s["rank"] for s in ranked] == [1, 2]
    assert ranked[0]["primary"] >= ranked[1]["primary"]
    for standing in ranked:
        low, high = standing["interval"]
        assert low <= standing["metrics"]["accuracy"] <= high
        assert standing["parameters"] > 10_000 and standing["seconds"] > 0
    assert result["rows"] == 87 and result["primary"] == "accuracy"
    assert record["output_model"] == ranked[0]["model"]

    board = fmbot_json(settings, "leaderboard", "text-classification")
    assert board["dataset_name"] == SST2.name and board["primary"] == "accuracy"
    assert {e["model"] for e in board["entries"]} == {models["good"], models["other"]}
    assert all(e["comparison"] == record["id"] for e in board["entries"])
    from bot.bootstrap import build_runtime
    from handlers.compare import show_leaderboard
    from handlers.errors import UserError

    with pytest.raises(UserError, match='no text-classification board for "nothing.jsonl"') as refused:
        show_leaderboard(build_runtime(settings), "text-classification", "nothing.jsonl")
    assert refused.value.field == "dataset" and SST2.name in str(refused.value)


# ------------------------------------------------------------------ end to end from Slack


def test_compare_from_slack_three_models_one_failing(bot, slack, slack_settings, start_worker):
    from bot.slack.ids import ActionId, BlockId, CallbackId
    from tests.slack_standin import SlackSender
    from tests.test_e2e_slack import chosen_values, nth_view, select
    from workers.ledger import Ledger

    models = add_models(Path(slack_settings.fmbot_models_dir))
    start_worker(slack_settings), start_worker(slack_settings)
    sender = SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")
    named = [models["good"], models["other"], models["broken"], models["wrong"]]
    assert sender.command("compare " + " ".join(named)).status_code == 200
    view = nth_view(slack, "views.open", 0, CallbackId.FORM_DATA)
    assert view["title"]["text"] == "Compare models"
    assert all(m in json.dumps(view["blocks"]) for m in named)

    upload = slack.add_file("sst2.jsonl", SST2.read_bytes())
    response = sender.view_submission(view, {
        BlockId.TASK: {ActionId.TASK: select("text-classification")},
        BlockId.TEST_FILE: {ActionId.FILE: {"type": "file_input", "files": [upload]}},
        BlockId.TEST_SOURCE: {ActionId.SOURCE: {"type": "plain_text_input", "value": None}},
    })
    assert response.json()["view"]["callback_id"] == CallbackId.FORM_CHECKING
    mapping_view = nth_view(slack, "views.update", 0, CallbackId.FORM_MAPPING)
    sender.view_submission(mapping_view, chosen_values(mapping_view))
    compute_view = nth_view(slack, "views.update", 1, CallbackId.FORM_COMPUTE)
    assert f"left out `{models['wrong']}`" in json.dumps(compute_view["blocks"])
    number = lambda value: {ActionId.NUMBER: {"type": "number_input", "value": value}}  # noqa: E731
    response = sender.view_submission(compute_view, {
        BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select", "selected_option": {"value": "cpu"}}},
        BlockId.INSTANCES: number("1"), BlockId.BATCH_SIZE: number("16")})
    assert response.status_code == 200 and response.text == ""

    def result_reply():
        return next((c for c in slack.of("chat.postMessage") if c.params.get("thread_ts")
                     and any(b["type"] == "table" for b in c.params.get("blocks") or [])), None)

    reply = slack.wait_for(result_reply, timeout=240).params
    statuses = [c for c in slack.of("chat.postMessage") if "thread_ts" not in c.params]
    assert len(statuses) == 1, "one status message for the whole comparison"
    lines = [json.dumps(c.params["blocks"]) for c in slack.of("chat.update")]
    assert any(models["good"] in line and "running" in line for line in lines)
    final_status = lines[-1]
    assert all(m in final_status for m in named[:3]) and f"Left out: `{models['wrong']}`" in final_status
    assert "failed" in final_status

    table = next(b for b in reply["blocks"] if b["type"] == "table")
    header, *rows = [[cell["text"] for cell in row] for row in table["rows"]]
    assert header[:3] == ["#", "model", "accuracy"] and "95% CI" in header
    assert [row[0] for row in rows] == ["1", "2", "—"] and rows[2][1] == models["broken"] and rows[2][2] == "failed"
    assert float(rows[0][2]) >= float(rows[1][2])
    text = json.dumps(reply["blocks"])
    assert f"`{models['broken']}` failed" in text and "Where they disagree" in text
    assert "accuracy" in reply["text"] and models["good"] in reply["text"], "a plain table for clients without tables"
    buttons = [e["text"]["text"] for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["Fine-tune the best", "Deploy the best", "Re-run"]

    upload_call = slack.wait_for(lambda: slack.of("files.completeUploadExternal"), 20)[0]
    assert upload_call.params["thread_ts"] == reply["thread_ts"]
    png = next(iter(slack.uploads.values()))
    assert png.startswith(b"\x89PNG") and len(png) > 5000

    records = {r.kind: r for r in Ledger(bot.runtime.redis).recent(limit=10)}
    comparison_record = records["compare"]
    assert comparison_record.state == "completed" and comparison_record.output_model == rows[0][1]
    sort = next(b["accessory"] for b in reply["blocks"] if b.get("accessory", {}).get("action_id") == ActionId.COMPARE_SORT)
    by_f1 = next(o for o in sort["options"] if o["value"].endswith(" f1_score_macro"))
    sender.interaction({"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"},
                        "api_app_id": "A0001", "channel": {"id": "C0CHAN"}, "response_url": sender.response_url,
                        "actions": [{"action_id": ActionId.COMPARE_SORT, "type": "static_select",
                                     "selected_option": by_f1}]})
    resorted = slack.wait_for(lambda: slack.answers(sender.response_url), 20)[0]
    resorted_header = [cell["text"] for cell in next(b for b in resorted["blocks"] if b["type"] == "table")["rows"][0]]
    assert resorted_header[2] == "f1_score_macro" and resorted["replace_original"] is True

    page = sender.ask("search tiny", slack)[0]
    picker = next(b for b in page["blocks"] if b["type"] == "actions" and b["elements"][0]["type"] == "checkboxes")
    ticked = [o for o in picker["elements"][0]["options"] if o["value"] in (models["good"], models["other"])]
    sender.interaction({"type": "block_actions", "user": {"id": "U0USER"}, "team": {"id": "T0001"},
                        "api_app_id": "A0001", "channel": {"id": "C0CHAN"}, "trigger_id": "t.compare",
                        "state": {"values": {"slack-made-id": {ActionId.COMPARE_PICK: {
                            "type": "checkboxes", "selected_options": ticked}}}},
                        "actions": [{"action_id": ActionId.COMPARE_SELECTED, "value": "search", "type": "button"}]})
    opened = nth_view(slack, "views.open", 1, CallbackId.FORM_DATA)
    assert models["good"] in json.dumps(opened["blocks"]) and models["broken"] not in json.dumps(opened["blocks"])


# ------------------------------------------------------------------ what Slack is shown, at its limits


def comparison_record(models: int, *, metric_chars: int = 12, seed: int = 0):
    """A finished comparison of `models` models as `workers.compare` stores it, with metric names
    `metric_chars` long and ten disagreements of long texts (for the views' limits)."""
    import random

    from platforms.base import DataRef, JobState
    from platforms.comparison import Disagreement
    from workers.compare import ComparisonResult, CompareSpec, Member, Standing
    from workers.ledger import JobRecord, ReplyTarget

    rng = random.Random(seed)
    names = [f"model-{'x' * 50}-{i}:1" for i in range(models)]
    metrics = ["accuracy"] + [f"{'m' * (metric_chars - 3)}_{i:02d}" for i in range(18)]
    standings = [Standing(model=m, job=f"ev-{i:08d}", state=JobState.COMPLETED, rank=i + 1,
                          metrics={n: rng.random() for n in metrics}, seconds=12.5, parameters=120_000)
                 for i, m in enumerate(names)]
    standings.sort(key=lambda s: s.metrics["accuracy"], reverse=True)
    for rank, s in enumerate(standings, start=1):
        s.rank, s.primary = rank, s.metrics["accuracy"]
        s.interval = (s.primary - 0.05, s.primary + 0.05)
    standings[-1].rank, standings[-1].state, standings[-1].error = None, JobState.FAILED, "boom " * 200
    result = ComparisonResult(task="text-classification", primary="accuracy", dataset="abc123-def456",
                              dataset_name="t" * 300 + ".jsonl", rows=500, standings=standings,
                              disagreements=[Disagreement(index=i, input="i" * 1000, reference="r" * 500,
                                                          predictions={m: "p" * 500 for m in names})
                                             for i in range(10)], disagreement_count=321)
    spec = CompareSpec(task="text-classification", test=DataRef(path="/x", name="t" * 300), mapping={"a": "b"},
                       dataset="abc123-def456", models=names, members=[s.job for s in standings])
    return JobRecord(id=f"cmp-{seed:08d}", kind="compare", model=" vs ".join(names), task="text-classification",
                     spec=spec.model_dump(mode="json"), requester="U0USER", state=JobState.COMPLETED,
                     reply_to=ReplyTarget(channel="C0CHAN"), output_model=standings[0].model,
                     result={"members": [Member(job=s.job, model=s.model, state=s.state, error=s.error).model_dump(
                         mode="json") for s in standings], "left_out": {"y" * 200: "z" * 500},
                         "comparison": result.model_dump(mode="json")})


def test_eight_models_and_long_metric_names_stay_within_slack_limits(slack_settings, slack):
    from bot.bootstrap import build_runtime
    from workers.notifier import JobEvent

    rt = build_runtime(slack_settings)
    record = comparison_record(8, metric_chars=120)
    rt.ledger.create(record)
    for event in (JobEvent.QUEUED, JobEvent.PROGRESS, JobEvent.COMPLETED):
        rt.notify(record, event)
    reply = slack.wait_for(lambda: next((c for c in slack.of("chat.postMessage") if c.params.get("thread_ts")), None))
    table = next(b for b in reply.params["blocks"] if b["type"] == "table")
    assert len(table["rows"]) == 9 and max(len(row) for row in table["rows"]) == 20
    assert len([b for b in reply.params["blocks"] if b["type"] == "section"]) >= 12
    slack.wait_for(lambda: slack.of("files.completeUploadExternal"), 20)
    assert slack.limit_problems() == []


def test_the_chart_is_a_real_png_that_differs_between_comparisons():
    from bot.slack.views.compare import attachments
    from workers.notifier import JobEvent

    first, second = (attachments(comparison_record(3, seed=seed), JobEvent.COMPLETED)[0] for seed in (1, 2))
    for chart in (first, second):
        assert chart.content.startswith(b"\x89PNG") and len(chart.content) > 5000
        width, height = int.from_bytes(chart.content[16:20], "big"), int.from_bytes(chart.content[20:24], "big")
        assert (width, height) == (700, 210), "two bars: the failed model has none"
    assert first.content != second.content


def test_compare_with_base_counts_flips_on_the_fine_tunes_own_test_split(settings, start_worker):
    from bot.bootstrap import build_runtime
    from handlers.compare import compare_with_base

    base = add_tiny_classifier(Path(settings.fmbot_models_dir), texts(), LABELS, name="tiny-base", seed=5)
    start_worker(settings), start_worker(settings)
    tuned = fmbot_json(settings, "finetune", base.ref, "--task", "text-classification", "--train", str(SST2),
                       "--map", "sentence1=input_string,label=label_string", "--validation-split", "0",
                       "--test-split", "30", "--epochs", "2", "--learning-rate", "0.01", "--wait")
    assert tuned["state"] == "completed", tuned.get("error")

    rt = build_runtime(settings)
    record = compare_with_base(rt, tuned["id"], tuned["requester"])
    record = final_record(rt.ledger, record.id, timeout=180)
    assert record.state == "completed", record.error
    result = record.result["comparison"]
    assert result["base"] == base.ref and {s["model"] for s in result["standings"]} == {base.ref, tuned["output_model"]}
    flips = result["flips"]
    assert flips["rows"] == result["rows"] == 26, "the 30% held out of 87 rows, kept by the fine-tune"
    accuracy = {s["model"]: s["metrics"]["accuracy"] for s in result["standings"]}
    assert len(flips["gained"]) - len(flips["lost"]) == round(
        (accuracy[tuned["output_model"]] - accuracy[base.ref]) * flips["rows"])
    assert len(result["flip_examples"]) == min(10, len(flips["gained"]) + len(flips["lost"]))


def test_the_finishing_job_looks_again_while_an_evaluation_is_still_running(settings):
    """A remote (Azure ML) evaluation's RQ job ends once submitted, so RQ may start the finishing job
    while the evaluation still runs: it schedules another look instead of ranking too early."""
    from rq.registry import ScheduledJobRegistry

    from bot.bootstrap import build_runtime
    from handlers.compare import CompareRequest, start_comparison
    from platforms.datasets import ColumnMapping
    from workers import compare

    models = add_models(Path(settings.fmbot_models_dir))
    rt = build_runtime(settings)
    record = start_comparison(rt, CompareRequest(
        models=[models["good"], models["other"]], task=Task.TEXT_CLASSIFICATION,
        test=DataRef(path=str(SST2), name=SST2.name),
        mapping=ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION),
        requester="U0USER"))
    assert compare.finish(rt, record.id)["state"] == "queued"
    assert len(ScheduledJobRegistry(queue=rt.queue)) == 1


def test_cancelling_a_comparison_cancels_its_evaluations_and_its_finishing_job(settings):
    from rq.job import Job, JobStatus

    from bot.bootstrap import build_runtime
    from handlers.compare import CompareRequest, start_comparison
    from handlers.jobs import cancel_job
    from platforms.datasets import ColumnMapping

    models = add_models(Path(settings.fmbot_models_dir))
    rt = build_runtime(settings)
    record = start_comparison(rt, CompareRequest(
        models=[models["good"], models["other"]], task=Task.TEXT_CLASSIFICATION,
        test=DataRef(path=str(SST2), name=SST2.name),
        mapping=ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION),
        requester="U0USER"))
    assert Job.fetch(record.id, connection=rt.redis, serializer=rt.queue.serializer).get_status() == JobStatus.DEFERRED
    canceled = cancel_job(rt, record.id, "U0USER")
    assert canceled.state == "canceled"
    for job in [record.id, *record.spec["members"]]:
        assert Job.fetch(job, connection=rt.redis, serializer=rt.queue.serializer).get_status() == JobStatus.CANCELED, job
    for member in record.spec["members"]:
        stored = rt.ledger.get(member)
        assert stored.state == "canceled" and record.id in stored.message
    assert rt.queue.count == 0


def test_supervised_work_horses_inherit_the_metric_libraries_and_a_share_of_the_cores(settings, tmp_path):
    """An evaluation's horse must not import scikit-learn & co. again (~1 s of CPU per job) nor run
    one torch thread per core in each of N workers: checked inside a real horse of a real
    `fmbot worker --processes 2`, started without OMP_NUM_THREADS."""
    import os
    import socket
    import subprocess
    import sys

    from bot.bootstrap import build_runtime
    from bot.worker import PRELOADED_METRICS
    from tests.helpers import ROOT, settings_env

    env = {k: v for k, v in settings_env(settings).items() if k != "OMP_NUM_THREADS"}
    with (tmp_path / "supervisor.log").open("wb") as log:
        supervisor = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker", "--processes", "2"],
                                      env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            rt = build_runtime(settings, slack=False)
            state = rt.run_on_host(socket.gethostname(), "tests.horse_probe.horse_state",
                                   [*PRELOADED_METRICS, "matplotlib.pyplot"], wait=180)
        finally:
            supervisor.terminate()
            supervisor.wait(timeout=60)
    assert state == {"preloaded": [*PRELOADED_METRICS, "matplotlib.pyplot"],
                     "torch_threads": max(1, (os.cpu_count() or 1) // 2)}

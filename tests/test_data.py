"""Data as teams bring it (issue 16): registered datasets, previews, bad rows skipped on request,
Python-literal cells, QA evaluation without offsets, and multi-label classification.

Files are public excerpts from tests/data (see SOURCES.md); the end-to-end tests go through the
`fmbot` CLI, Redis and a real worker process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from bot.cli import main
from bot.demo import DATA as DEMO
from bot.settings import Settings
from platforms.base import DatasetInfo
from platforms.datasets import (
    BadRowsError,
    ColumnMapping,
    DatasetError,
    RowPolicy,
    load_examples,
    preview_file,
    validate_file,
)
from platforms.local.datasets import LocalDatasets
from platforms.local.metrics import multilabel_metrics
from platforms.tasks import Task
from tests.conftest import DATA
from tests.worker_process import settings_env
from tests.tiny_models import add_tiny_bert
from workers.ledger import Ledger

MULTI = Task.TEXT_CLASSIFICATION_MULTILABEL
EMOTIONS = DATA / "goemotions_dev_head.tsv"
EMOTION_MAP = ColumnMapping.parse("sentence1=text,label=labels", MULTI)
SST2 = DATA / "sst2_small_validation.jsonl"
SST2_MAP = ColumnMapping.parse("sentence1=input_string,label=label_string", Task.TEXT_CLASSIFICATION)
# The demo's reviews with the labels their wording carries: sentiment, and what the last sentence says.
TAILS = {"Highly recommended.": "recommends", "Would buy again.": "recommends",
         "I want a refund.": "wants-refund", "Returning it today.": "wants-refund"}


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def sst2_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SST2.open()]


def reviews_with_label_sets(source: Path, target: Path) -> Path:
    """Labels written as Python literals (`"['positive', 'recommends']"`), as pandas exports them."""
    rows = [json.loads(line) for line in source.open()]
    return write(target, [{"review": r["review"], "labels": repr(
        [r["sentiment"], *(label for tail, label in TAILS.items() if r["review"].endswith(tail))])} for r in rows])


# ------------------------------------------------------------------ shapes


def test_label_sets_read_from_comma_separated_text_json_and_python_literals(tmp_path: Path):
    examples = load_examples(EMOTIONS, EMOTION_MAP)
    assert len(examples) == 185 and examples[1]["labels"] == ["4", "27"]
    marker = tmp_path / "evaluated"
    literal = write(tmp_path / "literal.jsonl", [
        {"text": "a", "labels": "['4', '27']"}, {"text": "b", "labels": ["15"]}, {"text": "c", "labels": "[]"},
        {"text": "d", "labels": f"[__import__('os').system('touch {marker}')]"}])
    rows = load_examples(literal, EMOTION_MAP)
    assert [r["labels"] for r in rows[:3]] == [["4", "27"], ["15"], []]
    assert rows[3]["labels"] == [f"[__import__('os').system('touch {marker}')]"] and not marker.exists()


def test_a_one_label_literal_is_that_label_and_a_longer_list_is_refused_for_single_label(tmp_path: Path):
    mapping = ColumnMapping.parse("sentence1=text,label=labels", Task.TEXT_CLASSIFICATION)
    path = write(tmp_path / "single.jsonl", [{"text": "a", "labels": "['25']"}, {"text": "b", "labels": "[3]"},
                                            {"text": "c", "labels": "['4', '27']"}])
    with pytest.raises(DatasetError) as refused:
        validate_file(path, mapping)
    assert str(refused.value).startswith('single.jsonl line 3: column "labels" holds a list of 2 labels where one '
                                         'label is expected. Give one label per row, or use the task '
                                         'text-classification-multilabel')
    assert [e["label"] for e in load_examples(path, mapping, rows=RowPolicy(skip=True, max_fraction=0.5))] == ["25", "3"]


def test_question_answering_evaluation_needs_only_the_answer_text(tmp_path: Path):
    """Azure's QA evaluation maps context, question and answer text; training finds the offset when
    the answer occurs once in the context and says why when it cannot."""
    squad = [q for q in json.loads((DATA / "squad_sample.json").read_text())["data"] if q["answers"]["text"]]
    once = [q for q in squad if q["context"].count(q["answers"]["text"][0]) == 1]
    assert len(once) >= 5
    flat = [{"question": q["question"], "context": q["context"], "answer": q["answers"]["text"][0]} for q in once]
    path = write(tmp_path / "qa.jsonl", flat)
    mapping = ColumnMapping.parse("question=question,context=context,answer_text=answer", Task.QUESTION_ANSWERING)
    scored = load_examples(path, mapping, training=False)
    assert len(scored) == len(once) and scored[0]["answers"] == {"text": [flat[0]["answer"]], "answer_start": []}
    trained = load_examples(path, mapping)
    assert [e["answers"]["answer_start"] for e in trained] == [[q["answers"]["answer_start"][0]] for q in once]

    twice = write(tmp_path / "twice.jsonl", [{"question": "Who?", "context": "Ann met Ann.", "answer": "Ann"}])
    with pytest.raises(DatasetError, match="occurs more than once in the context.*Give answer_start"):
        load_examples(twice, mapping)
    assert load_examples(twice, mapping, training=False)[0]["answers"]["text"] == ["Ann"]
    literal = write(tmp_path / "literal.jsonl", [{"question": "Who?", "context": "Ann met Bo.",
                                                  "answers": "{'text': ['Bo'], 'answer_start': [8]}"}])
    answers = ColumnMapping.parse("question=question,context=context,answers=answers", Task.QUESTION_ANSWERING)
    assert load_examples(literal, answers)[0]["answers"] == {"text": ["Bo"], "answer_start": [8]}


def test_tokens_given_as_one_space_separated_string_still_work(tmp_path: Path):
    rows = [json.loads(line) for line in (DATA / "conll_sample.json").open()]
    path = write(tmp_path / "spaced.jsonl", [{"words": " ".join(r["words"]), "ner": r["ner"]} for r in rows])
    mapping = ColumnMapping.parse("tokens=words,tags=ner", Task.TOKEN_CLASSIFICATION)
    assert [e["tokens"] for e in load_examples(path, mapping)] == [r["words"] for r in rows]


# ------------------------------------------------------------------ bad rows


def sst2_with_bad_rows(tmp_path: Path, bad: int) -> Path:
    """The SST-2 excerpt with `bad` rows spoiled the usual ways: a null or empty reference, a missing
    column, a label list where a label is expected."""
    rows = sst2_rows()
    spoil = [lambda r: {**r, "label_string": None}, lambda r: {**r, "label_string": ""},
             lambda r: {k: v for k, v in r.items() if k != "label_string"},
             lambda r: {**r, "label_string": ["positive", "negative"]}]
    for index in range(bad):
        rows[index * 3] = spoil[index % len(spoil)](rows[index * 3])
    return write(tmp_path / "sst2_bad.jsonl", rows)


def test_bad_rows_are_counted_and_shown_then_skipped_on_request_up_to_the_limit(tmp_path: Path):
    path = sst2_with_bad_rows(tmp_path, 4)
    with pytest.raises(BadRowsError) as refused:
        validate_file(path, SST2_MAP)
    message = str(refused.value)
    assert message.startswith('sst2_bad.jsonl line 1: column "label_string" is empty.')
    assert ('4 of 87 rows are bad (line 1 "label_string": column "label_string" is empty; line 4 "label_string": '
            'column "label_string" is empty; line 7 "label_string": column "label_string" is missing; line 10 '
            '"label_string": column "label_string" holds a list, not text): fix them, or skip them') in message
    summary = validate_file(path, SST2_MAP, rows=RowPolicy(skip=True))
    assert (summary.rows, summary.skipped, len(summary.bad_rows)) == (83, 4, 4)
    with pytest.raises(BadRowsError, match=r"4 of 87 rows are bad .* more than the 2% that may be skipped"):
        validate_file(path, SST2_MAP, rows=RowPolicy(skip=True, max_fraction=0.02))
    tags = write(tmp_path / "tags.jsonl", [{"words": ["a", "b"], "ner": ["O"]}] +
                 [{"words": ["a"], "ner": ["O"]}] * 30)
    mapping = ColumnMapping.parse("tokens=words,tags=ner", Task.TOKEN_CLASSIFICATION)
    assert validate_file(tags, mapping, rows=RowPolicy(skip=True)).bad_rows[0].problem == "has 2 tokens but 1 tags"


# ------------------------------------------------------------------ previews


def test_a_preview_shows_rows_as_the_model_sees_them_and_warns(tmp_path: Path):
    shown = preview_file(SST2, SST2_MAP, split_parts=2, max_length=20, test=(SST2, "same.jsonl"))
    first = sst2_rows()[0]
    assert shown.rows == 87 and shown.first[0].input == first["input_string"]
    assert shown.first[0].target == first["label_string"] and len(shown.first) == 3
    assert sum(shown.distribution.values()) == 87 and set(shown.distribution) == {"POSITIVE", "NEGATIVE"}
    assert any(w.startswith("87 of 87 rows of same.jsonl also appear in sst2_small_validation.jsonl") for w in shown.warnings)
    assert any("have more than 20 words" in w for w in shown.warnings)

    small = write(tmp_path / "small.jsonl", [{"input_string": "x y", "label_string": "rare"}] +
                  [{"input_string": f"row {i}", "label_string": "common"} for i in range(9)])
    assert any("class rare has fewer than 3 rows" in w for w in preview_file(small, SST2_MAP, split_parts=2).warnings)
    qa = write(tmp_path / "qa.jsonl", [{"question": "Who?", "context": "Ann met Bo.", "answer": "Cy"}])
    mapping = ColumnMapping.parse("question=question,context=context,answer_text=answer", Task.QUESTION_ANSWERING)
    assert preview_file(qa, mapping, training=False).warnings == [
        "1 of 1 rows have an answer that is not in their context: no span can match it, so those rows score 0"]
    ner = preview_file(DATA / "conll_sample.json", ColumnMapping.parse("tokens=words,tags=ner", Task.TOKEN_CLASSIFICATION))
    assert ner.distribution_of == "tags per entity type" and set(ner.distribution) <= {"PER", "LOC", "ORG", "MISC"}


# ------------------------------------------------------------------ metrics, registered datasets


def test_multilabel_metrics_use_exact_set_match_and_hamming_loss():
    metrics = multilabel_metrics([["a", "b"], ["b"], []], [["a", "b"], ["a"], []], ["a", "b"])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["hamming_loss"] == pytest.approx(2 / 6)
    assert metrics["precision_score_micro"] == pytest.approx(2 / 3) and metrics["recall_score_micro"] == pytest.approx(2 / 3)
    assert set(metrics) >= {"f1_score_macro", "f1_score_micro", "f1_score_weighted", "recall_score_weighted"}


def test_registered_versions_are_content_hashed_copies(tmp_path: Path):
    store = LocalDatasets(tmp_path / "datasets")
    info = DatasetInfo(name="x", version="0", path="", file_name="sst2.jsonl", rows=87, registered_by="U1")
    first = store.register("sst2", SST2, info)
    assert first.ref == "sst2:1" and Path(first.path).read_bytes() == SST2.read_bytes()
    assert store.register("sst2", SST2, info).ref == "sst2:1", "the same bytes are the same version"
    second = store.register("sst2", EMOTIONS, info)
    assert second.ref == "sst2:2" and store.get("sst2").ref == "sst2:2" and store.get("sst2:1") == first
    store.delete("sst2:2")
    assert [i.ref for i in store.list()] == ["sst2:1"]
    with pytest.raises(Exception, match='there is no registered dataset "sst2:9"'):
        store.get("sst2:9")
    with pytest.raises(Exception, match="is not a valid dataset name"):
        store.register("../up", SST2, info)


# ------------------------------------------------------------------ end to end: CLI, queue, worker


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    for name in [k for k in os.environ if k.startswith(("FMBOT_", "SLACK_", "AZURE"))]:
        monkeypatch.delenv(name)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    yield settings


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    return status, json.loads(lines[-1]) if lines and lines[-1][:1] in "[{" else out, err


def test_multilabel_finetune_from_a_registered_dataset_really_learns(cli_env: Settings, start_worker, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    train = reviews_with_label_sets(DEMO / "train.jsonl", tmp_path / "reviews-train.jsonl")
    test = reviews_with_label_sets(DEMO / "test.jsonl", tmp_path / "reviews-test.jsonl")
    base = add_tiny_bert(Path(cli_env.fmbot_models_dir), [json.loads(line)["review"] for line in train.open()])
    worker = start_worker(cli_env)
    status, registered, _ = run(capsys, "data", "register", "reviews", str(train), "--json")
    assert status == 0 and (registered["version"], registered["rows"]) == ("1", 320)
    status, listed, _ = run(capsys, "data", "list", "--json")
    assert [d["name"] for d in listed] == ["reviews"] and listed[0]["columns"] == ["review", "labels"]

    mapping = ("--map", "sentence1=review,label=labels", "--task", MULTI.value)
    status, previews, _ = run(capsys, "finetune", base.name, "--train", "data:reviews", "--test", str(test),
                              *mapping, "--dry-run", "--json")
    assert status == 0 and previews[0]["file"] == "data:reviews:1/reviews-train.jsonl"
    assert previews[0]["first"][0]["target"] and set(previews[0]["distribution"]) == {
        "positive", "negative", "recommends", "wants-refund"}
    assert Ledger(Redis.from_url(cli_env.redis_url)).recent() == [], "a dry run queues nothing"

    status, before, err = run(capsys, "evaluate", base.name, "--test", str(test), *mapping, "--wait", "--json")
    assert status == 0 and before["state"] == "completed", err + worker.output()[-2000:]
    assert "untrained head" in before["message"]
    status, after, err = run(capsys, "finetune", base.name, "--train", "data:reviews", "--test", str(test),
                             *mapping, "--epochs", "3", "--learning-rate", "5e-3", "--max-length", "48",
                             "--wait", "--json")
    assert status == 0 and after["state"] == "completed", err + worker.output()[-2000:]
    assert after["data"][0] == {"role": "train", "name": "data:reviews:1/reviews-train.jsonl", "dataset": "reviews:1",
                                "rows": 320, "skipped": 0, "skipped_rows": []}
    assert after["metrics"]["f1_score_micro"] >= 0.8
    assert after["metrics"]["f1_score_micro"] >= before["metrics"]["f1_score_micro"] + 0.3
    assert after["metrics"]["hamming_loss"] < before["metrics"]["hamming_loss"]

    status, tried, _ = run(capsys, "try", after["output_model"], "Our kettle works perfectly. Would buy again.", "--json")
    output = tried["outputs"][0]
    assert status == 0 and output["threshold"] == 0.5 and set(output["scores"]) == {
        "positive", "negative", "recommends", "wants-refund"}
    assert output["labels"] == [label for label, score in sorted(output["scores"].items(), key=lambda i: -i[1])
                                if score >= 0.5]


def test_bad_rows_refused_then_skipped_through_the_queue(cli_env: Settings, start_worker, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]):
    base = add_tiny_bert(Path(cli_env.fmbot_models_dir), [r["input_string"] for r in sst2_rows()])
    path = sst2_with_bad_rows(tmp_path, 3)
    argv = ("evaluate", base.name, "--task", "text-classification", "--test", str(path),
            "--map", "sentence1=input_string,label=label_string")
    status, _, err = run(capsys, *argv)
    assert status == 2 and "3 of 87 rows are bad (line 1" in err and "skip them" in err
    worker = start_worker(cli_env)
    status, record, err = run(capsys, *argv, "--skip-bad-rows", "--wait", "--json")
    assert status == 0 and record["state"] == "completed", err + worker.output()[-2000:]
    assert (record["data"][0]["rows"], record["data"][0]["skipped"]) == (84, 3)
    assert record["data"][0]["skipped_rows"][0] == 'line 1 "label_string": column "label_string" is empty'

    status, scored, err = run(capsys, "evaluate", base.name, "--task", MULTI.value, "--test", str(EMOTIONS),
                              "--map", "sentence1=text,label=labels", "--wait", "--json")
    assert status == 0 and scored["state"] == "completed", err + worker.output()[-2000:]
    assert 0 <= scored["metrics"]["hamming_loss"] <= 1 and scored["samples"][1]["reference"] == "4, 27"

"""Comparisons: several models evaluated in parallel on the same rows, ranked in one record.

The statistics are unit-tested on small hand-made rows; the whole path runs twice end to end with
real RQ workers: once from the CLI (`--wait --json`), once from Slack over signed HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from platforms import comparison
from platforms.tasks import Task
from tests.conftest import DATA, ROOT
from tests.tiny_models import add_tiny_bert
from tests.worker_process import settings_env

SST2 = DATA / "sst2_small_validation.jsonl"


def texts() -> list[str]:
    return [json.loads(line)["input_string"] for line in SST2.open()]


def add_models(models_dir: Path) -> dict[str, str]:
    """Two tiny BERTs that differ only by seed, one whose weights are gone (its evaluation fails)
    and one for another task (left out before anything runs)."""
    words = texts()
    good = add_tiny_bert(models_dir, words, name="tiny-a", seed=1)
    other = add_tiny_bert(models_dir, words, name="tiny-b", seed=2)
    broken = add_tiny_bert(models_dir, words, name="tiny-broken", seed=3)
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


def cli(settings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "bot.cli", *args], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode in (0, 1), done.stderr[-3000:]
    return done


def test_compare_on_the_cli_ranks_the_models_and_fills_the_leaderboard(settings, start_worker):
    models = add_models(Path(settings.fmbot_models_dir))
    workers = [start_worker(settings), start_worker(settings)]
    done = cli(settings, "compare", models["good"], models["other"], models["broken"], models["wrong"],
               "--task", "text-classification", "--test", str(SST2), "--map", "sentence1=input_string,label=label_string",
               "--wait", "--json")
    record = json.loads(done.stdout.strip().splitlines()[-1])
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

    board = json.loads(cli(settings, "leaderboard", "text-classification", "--json").stdout)
    assert board["dataset_name"] == SST2.name and board["primary"] == "accuracy"
    assert {e["model"] for e in board["entries"]} == {models["good"], models["other"]}
    assert all(e["comparison"] == record["id"] for e in board["entries"])
    missing = cli(settings, "leaderboard", "text-classification", "nothing.jsonl", check=False)
    assert missing.returncode == 2 and 'no text-classification board for "nothing.jsonl"' in missing.stderr

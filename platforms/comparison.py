"""Ranking models evaluated on the same rows: primary metric, bootstrap intervals, disagreements, flips.

Pure functions over what evaluations store: their metrics and their scored rows
(`{input, reference, prediction}` in test-file order, `JobRecord.rows`). Each interval is a
percentile bootstrap over the test rows of the task's primary metric, recomputed with the same
metric function the evaluation used, so a team sees whether a difference between two models is
larger than the noise of its test set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from platforms.local.metrics import (
    bleu_metrics,
    classification_metrics,
    question_answering_metrics,
    rouge_metrics,
    token_classification_metrics,
)
from platforms.tasks import Task

PRIMARY: dict[Task, str] = {
    Task.TEXT_CLASSIFICATION: "accuracy",
    Task.TOKEN_CLASSIFICATION: "f1_score_micro",
    Task.QUESTION_ANSWERING: "exact_match",
    Task.SUMMARIZATION: "rougeL",
    Task.TRANSLATION: "bleu_4",
    Task.TEXT_GENERATION: "rougeL",
    Task.CHAT_COMPLETION: "rougeL",
}
LOWER_IS_BETTER = frozenset({"perplexity"})
BOOTSTRAP_RESAMPLES = 1000
# Corpus-level metrics (entity F1, BLEU) are recomputed whole for each resample, so fewer of them.
CORPUS_RESAMPLES = 200
DISAGREEMENT_LIMIT = 10
# A row counts as "right" for flips when its own score reaches this (exact for labels and answers).
RIGHT_SCORE = 0.5
QA_ANSWER_SEPARATOR = " | "


def primary_metric(task: Task | str) -> str:
    return PRIMARY.get(Task(task), "accuracy")


def better(metric: str, value: float) -> float:
    """A sort key where larger is better for every metric (perplexity is lower-better)."""
    return -value if metric in LOWER_IS_BETTER else value


def _qa_refs(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    return [str(r["reference"]).split(QA_ANSWER_SEPARATOR) for r in rows]


def _corpus(task: Task) -> Callable[[Sequence[dict[str, Any]]], float] | None:
    """The primary metric of a set of rows, for metrics that are not a mean of per-row scores."""
    if task == Task.TOKEN_CLASSIFICATION:
        return lambda rows: token_classification_metrics([str(r["reference"]).split() for r in rows],
                                                         [str(r["prediction"]).split() for r in rows])["f1_score_micro"]
    if task == Task.TRANSLATION:
        return lambda rows: bleu_metrics([str(r["reference"]) for r in rows],
                                         [str(r["prediction"]) for r in rows])["bleu_4"]
    return None


def row_scores(task: Task | str, rows: Sequence[dict[str, Any]]) -> list[float]:
    """Each row's own score in 0..1: right or wrong for labels and answers, ROUGE-L or sentence
    BLEU for generated text, the share of tags right for token classification."""
    task = Task(task)
    if task == Task.TEXT_CLASSIFICATION:
        return [float(str(r["reference"]) == str(r["prediction"])) for r in rows]
    if task == Task.QUESTION_ANSWERING:
        return [question_answering_metrics([refs], [str(r["prediction"])])["exact_match"]
                for refs, r in zip(_qa_refs(rows), rows, strict=True)]
    if task == Task.TOKEN_CLASSIFICATION:
        scores = []
        for r in rows:
            ref, pred = str(r["reference"]).split(), str(r["prediction"]).split()
            scores.append(sum(a == b for a, b in zip(ref, pred)) / max(len(ref), 1))
        return scores
    if task == Task.TRANSLATION:
        from sacrebleu.metrics import BLEU

        bleu = BLEU(effective_order=True)
        return [bleu.sentence_score(str(r["prediction"]), [str(r["reference"])]).score / 100 for r in rows]
    return [rouge_metrics([str(r["reference"])], [str(r["prediction"])])["rougeL"] for r in rows]


def statistic(task: Task | str, rows: Sequence[dict[str, Any]]) -> float:
    """The task's primary metric recomputed from stored rows."""
    task = Task(task)
    corpus = _corpus(task)
    if corpus is not None:
        return corpus(rows)
    if task == Task.TEXT_CLASSIFICATION:
        return classification_metrics([str(r["reference"]) for r in rows],
                                      [str(r["prediction"]) for r in rows])["accuracy"]
    scores = row_scores(task, rows)
    return sum(scores) / max(len(scores), 1)


def bootstrap_interval(task: Task | str, rows: Sequence[dict[str, Any]], *, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float] | None:
    """A percentile bootstrap interval of the primary metric over `rows`; None for fewer than two rows.

    The same seed resamples the same row indices for every model, so the intervals of models
    scored on the same rows are comparable."""
    if len(rows) < 2:
        return None
    import numpy as np

    task = Task(task)
    rng = np.random.default_rng(seed)
    n = len(rows)
    corpus = _corpus(task)
    if corpus is None:
        samples = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
        values = np.asarray(row_scores(task, rows))[samples].mean(axis=1)
    else:
        samples = rng.integers(0, n, size=(CORPUS_RESAMPLES, n))
        values = np.asarray([corpus([rows[i] for i in sample]) for sample in samples])
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


class Disagreement(BaseModel):
    """One test row where the models' predictions differ."""

    index: int
    input: str
    reference: str
    predictions: dict[str, str]


def _same(task: Task, a: Any, b: Any) -> bool:
    if task == Task.QUESTION_ANSWERING:
        return question_answering_metrics([[str(a)]], [str(b)])["exact_match"] == 1.0
    return str(a).strip() == str(b).strip()


def disagreements(task: Task | str, rows_by_model: dict[str, Sequence[dict[str, Any]]], *,
                  limit: int = DISAGREEMENT_LIMIT) -> tuple[list[Disagreement], int]:
    """Up to `limit` rows where at least two models predict differently, in test order, and how
    many such rows there are in all."""
    task = Task(task)
    models = [m for m, rows in rows_by_model.items() if rows]
    if len(models) < 2:
        return [], 0
    count = min(len(rows_by_model[m]) for m in models)
    found, total = [], 0
    for index in range(count):
        predictions = {m: rows_by_model[m][index]["prediction"] for m in models}
        first = predictions[models[0]]
        if all(_same(task, first, p) for p in predictions.values()):
            continue
        total += 1
        if len(found) < limit:
            row = rows_by_model[models[0]][index]
            found.append(Disagreement(index=index, input=str(row["input"]), reference=str(row["reference"]),
                                      predictions={m: str(p) for m, p in predictions.items()}))
    return found, total


class Flips(BaseModel):
    """Rows right before and wrong after (`lost`), and wrong before and right after (`gained`)."""

    rows: int
    gained: list[int]
    lost: list[int]


def flips(task: Task | str, before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]) -> Flips:
    count = min(len(before), len(after))
    right_before = [s >= RIGHT_SCORE for s in row_scores(task, before[:count])]
    right_after = [s >= RIGHT_SCORE for s in row_scores(task, after[:count])]
    return Flips(rows=count,
                 gained=[i for i in range(count) if right_after[i] and not right_before[i]],
                 lost=[i for i in range(count) if right_before[i] and not right_after[i]])

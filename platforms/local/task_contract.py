"""The contract every local task module keeps, and the evaluation steps they all share.

A task module is a plain module (`text_classification`, `translation`, ...) entered in
`task_modules.TASK_MODULES`. Every one can be tried and served (`TaskModule`); those whose task
takes a dataset can also be scored and fine-tuned (`TrainableTaskModule`). Their `evaluate`
functions are one skeleton, `evaluation`: seed, load the model, score the examples, and keep the
scored rows (the first few are the samples a job card shows; up to ROW_LIMIT are kept for
comparisons).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.training import ROW_LIMIT, TaskResult

Predictor = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
Scores = tuple[dict[str, float], list[dict[str, Any]]]


class TaskModule(Protocol):
    """What try, the endpoints and the catalog card need of a task."""

    SAMPLE_INPUT: dict[str, Any]

    def load_predictor(self, model_dir: Path, *, max_length: int = 256) -> Predictor:
        """Load once, predict many times: task inputs in, one answer per input out."""
        ...


class TrainableTaskModule(TaskModule, Protocol):
    """A task that takes a dataset; `options` are the task's own (translation's languages)."""

    def evaluate(self, model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
                 batch_size: int = 32, seed: int = 42, **options: Any) -> TaskResult:
        ...

    def finetune(self, model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
                 hyper: Hyperparameters, report: ProgressReport, out_dir: Path, **options: Any) -> TaskResult:
        ...


def sample_rows(examples: Sequence[dict[str, Any]], predictions: Sequence[Any],
                show: Callable[[dict[str, Any], Any], tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """The first ROW_LIMIT examples as a job card shows them; `show` gives (input, reference, prediction)."""
    rows = []
    for example, prediction in islice(zip(examples, predictions, strict=True), ROW_LIMIT):
        shown, reference, predicted = show(example, prediction)
        rows.append({"input": shown, "reference": reference, "prediction": predicted})
    return rows


def evaluation(seed: int, load: Callable[[], tuple[Any, Any, str | None]],
               score: Callable[[Any, Any], Scores]) -> TaskResult:
    """Seed, load (model, tokenizer, a note for the user or None), score, and report."""
    from transformers import set_seed

    set_seed(seed)
    model, tokenizer, note = load()
    metrics, rows = score(model, tokenizer)
    parameters = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
    return TaskResult(metrics=metrics, rows=rows, message=note, parameters=parameters)

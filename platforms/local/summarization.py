"""Abstractive summarization with an encoder-decoder model on the local platform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.metrics import rouge_metrics
from platforms.local.seq2seq import finetune_seq2seq, generate_texts, load_seq2seq, task_prefix
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult

SAMPLE_INPUT = {
    "document": (
        "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
        "structure in Paris. Its base is square, measuring 125 metres on each side. During its construction, "
        "the Eiffel Tower surpassed the Washington Monument to become the tallest man-made structure in the world."
    ),
}
PREFIX_KEY = "summarization"
T5_PREFIX = "summarize: "


def _prefix(model: Any) -> str:
    return task_prefix(model.config, PREFIX_KEY, T5_PREFIX)


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"document"}] -> [{"summary"}]`."""
    model, tokenizer = load_seq2seq(model_dir)
    prefix = _prefix(model)

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [prefix + str(item["document"]) for item in inputs]
        return [{"summary": s} for s in generate_texts(model, tokenizer, texts, max_length=max_length)]

    return predict


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
           batch_size: int) -> Scores:
    prefix = _prefix(model)
    predictions = generate_texts(model, tokenizer, [prefix + e["document"] for e in examples],
                                 max_length=max_length, batch_size=batch_size)
    metrics = rouge_metrics([e["summary"] for e in examples], predictions)
    return metrics, sample_rows(examples, predictions, lambda e, p: (e["document"], e["summary"], p))


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: (*load_seq2seq(model_dir), None),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import AutoConfig, set_seed

    set_seed(hyper.seed)
    prefix = task_prefix(AutoConfig.from_pretrained(model_dir), PREFIX_KEY, T5_PREFIX)
    model, tokenizer, losses = finetune_seq2seq(
        model_dir, [prefix + e["document"] for e in train_examples], [e["summary"] for e in train_examples],
        hyper, report, out_dir, prefixes={PREFIX_KEY: prefix} if prefix else {},
    )
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

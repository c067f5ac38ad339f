"""Multi-label text classification on the local platform: any number of labels per text.

The same encoder and head as `text_classification`, trained with a sigmoid per label and binary
cross-entropy (transformers' `multi_label_classification` problem type) instead of a softmax over
classes. A label applies when its score reaches the model's threshold (`MULTILABEL_THRESHOLD`,
saved in the model's config, so try, endpoints and evaluation decide alike).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.metrics import multilabel_metrics
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.text_classification import classifier_predictor, encode_pairs, load_classifier
from platforms.local.training import TaskResult, batches, on_device, train
from platforms.tasks import MULTILABEL_THRESHOLD

SAMPLE_INPUT = {"sentence1": "Thank you so much, this made my day!"}
PROBLEM_TYPE = "multi_label_classification"


def _load(model_dir: Path, classes: list[str]) -> tuple[Any, Any, str | None]:
    model, tokenizer, note = load_classifier(model_dir, classes)
    model.config.problem_type = PROBLEM_TYPE
    if getattr(model.config, "threshold", None) is None:
        model.config.threshold = MULTILABEL_THRESHOLD
    return model, tokenizer, note


def predict_label_sets(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int = 256,
                       batch_size: int = 32) -> list[dict[str, Any]]:
    """`{"labels": [...], "scores": {label: score}, "threshold": t}` per input, labels in score order."""
    import torch

    on_device(model)
    threshold = float(getattr(model.config, "threshold", None) or MULTILABEL_THRESHOLD)
    names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    results = []
    for batch in batches(examples, batch_size):
        encoded = tokenizer(
            [e["sentence1"] for e in batch],
            [e["sentence2"] for e in batch] if "sentence2" in batch[0] else None,
            truncation=True, max_length=max_length, padding=True, return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            probabilities = model(**encoded).logits.float().sigmoid().cpu()
        for row in probabilities:
            scores = {name: round(float(p), 4) for name, p in zip(names, row, strict=True)}
            chosen = sorted((n for n, p in zip(names, row, strict=True) if float(p) >= threshold),
                            key=lambda n: -scores[n])
            results.append({"labels": chosen, "scores": scores, "threshold": threshold})
    return results


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"sentence1": ...}] -> [{"labels", "scores", "threshold"}]`."""
    return classifier_predictor(model_dir, predict_label_sets, max_length=max_length)


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int, batch_size: int) -> Scores:
    predictions = predict_label_sets(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    classes = [model.config.id2label[i] for i in range(len(model.config.id2label))]
    metrics = multilabel_metrics([e["labels"] for e in examples], [p["labels"] for p in predictions], classes)
    return metrics, sample_rows(examples, predictions, lambda e, p: (
        e["sentence1"] if "sentence2" not in e else f"{e['sentence1']} || {e['sentence2']}",
        ", ".join(e["labels"]), ", ".join(p["labels"])))


def _classes(*splits: list[dict[str, Any]]) -> list[str]:
    return sorted({label for split in splits for example in split for label in example["labels"]})


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: _load(model_dir, _classes(examples)),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import DataCollatorWithPadding, set_seed

    set_seed(hyper.seed)
    model, tokenizer, _ = _load(model_dir, _classes(train_examples, test_examples))
    label2id = model.config.label2id
    encoded = encode_pairs(tokenizer, train_examples, hyper.max_length)
    dataset = []
    for i, example in enumerate(train_examples):
        targets = [0.0] * len(label2id)
        for label in example["labels"]:
            targets[label2id[label]] = 1.0
        dataset.append({**{key: encoded[key][i] for key in encoded}, "labels": targets})
    losses = train(model, tokenizer, dataset, DataCollatorWithPadding(tokenizer), hyper, report)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

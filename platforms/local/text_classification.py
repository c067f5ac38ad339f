"""Text classification (single sentence or sentence pair) on the local platform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.metrics import classification_metrics
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult, batches, on_device, train

SAMPLE_INPUT = {"sentence1": "I loved this movie, the acting was wonderful."}


def encode_pairs(tokenizer: Any, examples: list[dict[str, Any]], max_length: int) -> dict[str, Any]:
    first = [e["sentence1"] for e in examples]
    second = [e["sentence2"] for e in examples] if "sentence2" in examples[0] else None
    return tokenizer(first, second, truncation=True, max_length=max_length)


def load_classifier(model_dir: Path, classes: list[str]) -> tuple[Any, Any, str | None]:
    """The model with a head whose labels are `classes`, and a note when that head is new.

    A fine-tuned model keeps its own label names; a model whose head has default names
    (LABEL_0, ...) of the right count is read in sorted-class order; any other model gets a fresh,
    seeded head, which is what "the base model before fine-tuning" means for a classifier.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    is_classifier = any(a.endswith("ForSequenceClassification") for a in (config.architectures or []))
    names = [config.id2label[i] for i in sorted(config.id2label)] if is_classifier else []
    if is_classifier and set(names) >= set(classes):
        return AutoModelForSequenceClassification.from_pretrained(model_dir), tokenizer, None
    if is_classifier and len(names) == len(classes) and all(n == f"LABEL_{i}" for i, n in enumerate(names)):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        model.config.id2label = dict(enumerate(classes))
        model.config.label2id = {c: i for i, c in enumerate(classes)}
        return model, tokenizer, None
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir,
        num_labels=len(classes),
        id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)},
        ignore_mismatched_sizes=True,
    )
    return model, tokenizer, "the model had no head for these labels; it was scored with a new, untrained head"


def predict_labels(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int = 256,
                   batch_size: int = 32) -> list[dict[str, Any]]:
    import torch

    on_device(model)
    results = []
    for batch in batches(examples, batch_size):
        encoded = tokenizer(
            [e["sentence1"] for e in batch],
            [e["sentence2"] for e in batch] if "sentence2" in batch[0] else None,
            truncation=True, max_length=max_length, padding=True, return_tensors="pt",
        ).to(model.device)
        with torch.inference_mode():
            probabilities = model(**encoded).logits.float().softmax(-1).cpu()
        for row in probabilities:
            index = int(row.argmax())
            results.append({"label": model.config.id2label[index], "score": float(row[index])})
    return results


def classifier_predictor(model_dir: Path, predict_rows: Callable[..., list[dict[str, Any]]], *,
                         max_length: int) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """A sequence classifier loaded once, whose answers `predict_rows(model, tokenizer, inputs,
    max_length=)` shapes (one label, or a label set)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return lambda inputs: predict_rows(model, tokenizer, inputs, max_length=max_length)


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"sentence1": ..., "sentence2"?: ...}] -> [{"label", "score"}]`."""
    return classifier_predictor(model_dir, predict_labels, max_length=max_length)


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
           batch_size: int) -> Scores:
    predictions = predict_labels(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    references = [e["label"] for e in examples]
    metrics = classification_metrics(references, [p["label"] for p in predictions])
    return metrics, sample_rows(examples, predictions, lambda e, p: (
        e["sentence1"] if "sentence2" not in e else f"{e['sentence1']} || {e['sentence2']}", e["label"], p["label"]))


def _classes(*splits: list[dict[str, Any]]) -> list[str]:
    return sorted({example["label"] for split in splits for example in split})


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: load_classifier(model_dir, _classes(examples)),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import DataCollatorWithPadding, set_seed

    set_seed(hyper.seed)
    model, tokenizer, _ = load_classifier(model_dir, _classes(train_examples, test_examples))
    label2id = model.config.label2id
    encoded = encode_pairs(tokenizer, train_examples, hyper.max_length)
    dataset = [
        {**{key: encoded[key][i] for key in encoded}, "labels": label2id[example["label"]]}
        for i, example in enumerate(train_examples)
    ]
    losses = train(model, tokenizer, dataset, DataCollatorWithPadding(tokenizer), hyper, report)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

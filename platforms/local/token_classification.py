"""Token classification (named entities, one tag per word) on the local platform."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.metrics import token_classification_metrics
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult, batches, on_device, token_limit, train

SAMPLE_INPUT = {"text": "My name is Wolfgang and I live in Berlin"}
# Labels only the first sub-token of each word; the rest are ignored by the loss and the predictions.
IGNORED = -100
BIO_PREFIXES = ("B-", "I-", "E-", "S-")


def load_tagger(model_dir: Path, tags: list[str]) -> tuple[Any, Any, str | None]:
    """The model with a head whose labels cover `tags`, and a note when that head is new.

    A fine-tuned tagger keeps its own label names; any other model gets a fresh, seeded head over the
    sorted tags, which is what "the base model before fine-tuning" means for a tagger.
    """
    from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    is_tagger = any(a.endswith("ForTokenClassification") for a in (config.architectures or []))
    if is_tagger and set(config.id2label.values()) >= set(tags):
        return AutoModelForTokenClassification.from_pretrained(model_dir), tokenizer, None
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir,
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id={t: i for i, t in enumerate(tags)},
        ignore_mismatched_sizes=True,
    )
    return model, tokenizer, "the model had no head for these tags; it was scored with a new, untrained head"


def _encode(tokenizer: Any, words: list[list[str]], max_length: int, **kwargs: Any) -> Any:
    return tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, **kwargs)


def _first_subtokens(encoded: Any, index: int) -> dict[int, int]:
    """Word index -> position of its first sub-token (words cut off by truncation are absent)."""
    firsts: dict[int, int] = {}
    for position, word in enumerate(encoded.word_ids(index)):
        if word is not None and word not in firsts:
            firsts[word] = position
    return firsts


def predict_tags(model: Any, tokenizer: Any, words: list[list[str]], *, max_length: int = 256,
                 batch_size: int = 32) -> list[list[tuple[str, float]]]:
    """One (tag, score) per word; words past `max_length` get "O" (or the first tag) with score 0."""
    import torch

    on_device(model)
    max_length = token_limit(model, max_length)
    id2label = model.config.id2label
    fallback = "O" if "O" in id2label.values() else id2label[0]
    results = []
    for batch in batches(words, batch_size):
        encoded = _encode(tokenizer, batch, max_length, padding=True, return_tensors="pt")
        with torch.inference_mode():
            probabilities = model(**encoded.to(model.device)).logits.float().softmax(-1).cpu()
        for i, sentence in enumerate(batch):
            firsts = _first_subtokens(encoded, i)
            tags = []
            for word in range(len(sentence)):
                if word not in firsts:
                    tags.append((fallback, 0.0))
                    continue
                row = probabilities[i, firsts[word]]
                index = int(row.argmax())
                tags.append((id2label[index], float(row[index])))
            results.append(tags)
    return results


def _words(item: dict[str, Any]) -> tuple[list[str], list[tuple[int, int]] | None]:
    """Words and, for free text, each word's character span in it."""
    if "tokens" in item:
        return [str(t) for t in item["tokens"]], None
    text, words, spans, position = str(item["text"]), [], [], 0
    for word in text.split():
        start = text.index(word, position)
        position = start + len(word)
        words.append(word)
        spans.append((start, position))
    return words, spans


def _entities(words: list[str], tagged: list[tuple[str, float]],
              spans: list[tuple[int, int]] | None) -> list[dict[str, Any]]:
    from seqeval.metrics.sequence_labeling import get_entities

    # Tags without a B-/I-/E-/S- prefix (IO tagging, or a head's LABEL_n) group as runs of the same tag.
    tags = [tag if tag == "O" or tag[:2] in BIO_PREFIXES else f"I-{tag}" for tag, _ in tagged]
    return [
        {"entity": kind, "word": " ".join(words[first:last + 1]),
         "score": min(score for _, score in tagged[first:last + 1]),
         "start": spans[first][0] if spans else first, "end": spans[last][1] if spans else last + 1}
        for kind, first, last in get_entities(tags)
    ]


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times.

    `[{"text": "words split on spaces"} | {"tokens": [...]}] -> [{"tokens", "tags", "entities"}]`; an
    entity's start/end are character offsets for text input and word indices for token input.
    """
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = [_words(item) for item in inputs]
        tagged = predict_tags(model, tokenizer, [words for words, _ in parsed], max_length=max_length)
        return [
            {"tokens": words, "tags": [tag for tag, _ in tags], "entities": _entities(words, tags, spans)}
            for (words, spans), tags in zip(parsed, tagged, strict=True)
        ]

    return predict


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
           batch_size: int) -> Scores:
    predicted = predict_tags(model, tokenizer, [e["tokens"] for e in examples], max_length=max_length,
                             batch_size=batch_size)
    predictions = [[tag for tag, _ in tags] for tags in predicted]
    metrics = token_classification_metrics([e["tags"] for e in examples], predictions)
    return metrics, sample_rows(examples, predictions,
                                lambda e, p: (" ".join(e["tokens"]), " ".join(e["tags"]), " ".join(p)))


def _tags(*splits: list[dict[str, Any]]) -> list[str]:
    return sorted({tag for split in splits for example in split for tag in example["tags"]})


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: load_tagger(model_dir, _tags(examples)),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import DataCollatorForTokenClassification, set_seed

    set_seed(hyper.seed)
    model, tokenizer, _ = load_tagger(model_dir, _tags(train_examples, test_examples))
    label2id = model.config.label2id
    encoded = _encode(tokenizer, [e["tokens"] for e in train_examples], token_limit(model, hyper.max_length))
    dataset = []
    for i, example in enumerate(train_examples):
        labels = [IGNORED] * len(encoded["input_ids"][i])
        for word, position in _first_subtokens(encoded, i).items():
            labels[position] = label2id[example["tags"][word]]
        dataset.append({**{key: encoded[key][i] for key in encoded}, "labels": labels})
    losses = train(model, tokenizer, dataset, DataCollatorForTokenClassification(tokenizer), hyper, report)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

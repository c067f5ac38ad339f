"""Translation with an encoder-decoder model on the local platform.

Language codes are optional: T5-style models need them for their prefix ("translate English to
Romanian: "); models trained for one direction (Marian, a fine-tuned T5) translate without them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.metrics import bleu_metrics
from platforms.local.seq2seq import finetune_seq2seq, generate_texts, load_seq2seq, task_prefix
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult

SAMPLE_INPUT = {"source": "The house is wonderful and the garden is full of flowers."}
PREFIX_KEY = "translation"
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "fi": "Finnish",
    "fr": "French", "hi": "Hindi", "it": "Italian", "ja": "Japanese", "nl": "Dutch", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "tr": "Turkish", "zh": "Chinese",
}


def _prefix(config: Any, source_lang: str | None, target_lang: str | None) -> tuple[str, list[str]]:
    """The prefix for this direction and the task_specific_params keys it belongs under.

    T5 checkpoints keep one key per direction (`translation_en_to_ro`); the generic `translation` key
    holds the direction a model was fine-tuned for, used when a request names no languages.
    """
    if not (source_lang and target_lang):
        return task_prefix(config, PREFIX_KEY, ""), [PREFIX_KEY]
    key = f"{PREFIX_KEY}_{source_lang}_to_{target_lang}"
    source, target = (LANGUAGE_NAMES.get(code.lower(), code) for code in (source_lang, target_lang))
    return task_prefix(config, key, f"translate {source} to {target}: "), [key, PREFIX_KEY]


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"source"}] -> [{"translation"}]`, in the model's trained direction."""
    model, tokenizer = load_seq2seq(model_dir)
    prefix, _ = _prefix(model.config, None, None)

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [prefix + str(item["source"]) for item in inputs]
        return [{"translation": t} for t in generate_texts(model, tokenizer, texts, max_length=max_length)]

    return predict


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], prefix: str, max_length: int,
           batch_size: int) -> Scores:
    predictions = generate_texts(model, tokenizer, [prefix + e["source"] for e in examples],
                                 max_length=max_length, batch_size=batch_size)
    metrics = bleu_metrics([e["target"] for e in examples], predictions)
    return metrics, sample_rows(examples, predictions, lambda e, p: (e["source"], e["target"], p))


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256, batch_size: int = 32,
             seed: int = 42, source_lang: str | None = None, target_lang: str | None = None) -> TaskResult:
    def score(model: Any, tokenizer: Any) -> Scores:
        prefix, _ = _prefix(model.config, source_lang, target_lang)
        return _score(model, tokenizer, examples, prefix, max_length, batch_size)

    return evaluation(seed, lambda: (*load_seq2seq(model_dir), None), score)


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path, *, source_lang: str | None = None,
             target_lang: str | None = None) -> TaskResult:
    from transformers import AutoConfig, set_seed

    set_seed(hyper.seed)
    prefix, keys = _prefix(AutoConfig.from_pretrained(model_dir), source_lang, target_lang)
    model, tokenizer, losses = finetune_seq2seq(
        model_dir, [prefix + e["source"] for e in train_examples], [e["target"] for e in train_examples],
        hyper, report, out_dir, prefixes=dict.fromkeys(keys, prefix) if prefix else {},
    )
    metrics, samples = _score(model, tokenizer, test_examples, prefix, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

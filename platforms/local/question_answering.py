"""Extractive question answering (SQuAD style) on the local platform.

The question-answering pipeline is gone in transformers 5, so spans are read straight from the
model's start/end logits through the tokenizer's offset mapping. A context longer than `max_length`
is cut into overlapping windows (a quarter of the window overlaps), as in the SQuAD reference code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, PlatformError, ProgressReport
from platforms.local.metrics import question_answering_metrics
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult, batches, on_device, token_limit, train

SAMPLE_INPUT = {
    "question": "What is the capital of France?",
    "context": "Paris is the capital and largest city of France, with an estimated population of 2 million.",
}
MAX_ANSWER_TOKENS = 30
BEST_SPANS = 20
MIN_CONTEXT_TOKENS = 8
# What the tokenizer returns to map windows back to examples and characters; not model inputs.
WINDOW_BOOKKEEPING = ("offset_mapping", "overflow_to_sample_mapping")


def load_reader(model_dir: Path) -> tuple[Any, Any, str | None]:
    """The model with a span head, and a note when that head is new (a base encoder)."""
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    has_head = any(a.endswith("ForQuestionAnswering") for a in (config.architectures or []))
    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    note = None if has_head else "the model had no question-answering head; it was scored with a new, untrained head"
    return model, AutoTokenizer.from_pretrained(model_dir), note


def _windows(tokenizer: Any, examples: list[dict[str, Any]], max_length: int, **kwargs: Any) -> Any:
    """Question + context windows; `overflow_to_sample_mapping` says which example each window is from.

    The overlap must be shorter than the context part of a window (the tokenizer panics otherwise),
    so long questions shrink it, and a question that leaves no room for context is refused.
    """
    questions = [e["question"].lstrip() for e in examples]
    longest = max(len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"])
    room = max_length - longest - tokenizer.num_special_tokens_to_add(pair=True)
    if room < MIN_CONTEXT_TOKENS:
        raise PlatformError(f"a question of {longest} tokens leaves no room for its context in {max_length} tokens",
                            hint="Raise the max length or shorten the question")
    return tokenizer(
        questions, [e["context"] for e in examples],
        truncation="only_second", max_length=max_length, stride=min(max_length // 4, room // 2),
        return_overflowing_tokens=True, return_offsets_mapping=True, **kwargs,
    )


def _context_span(sequence_ids: list[int | None]) -> tuple[int, int]:
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    return first, last


def _training_features(tokenizer: Any, examples: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """One feature per window, labelled with the first answer's token span, or the first token when
    the answer is not inside that window (or there is none), as SQuAD v2 training does."""
    encoded = _windows(tokenizer, examples, max_length)
    features = []
    for i, offsets in enumerate(encoded["offset_mapping"]):
        example = examples[encoded["overflow_to_sample_mapping"][i]]
        answers = example["answers"]
        start_position = end_position = 0
        if answers["text"] and answers["answer_start"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            first, last = _context_span(encoded.sequence_ids(i))
            if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                start_position = next(t for t in range(first, last + 1) if offsets[t][1] > start_char)
                end_position = next(t for t in range(last, first - 1, -1) if offsets[t][0] < end_char)
        features.append({
            "input_ids": encoded["input_ids"][i],
            "attention_mask": encoded["attention_mask"][i],
            **({"token_type_ids": encoded["token_type_ids"][i]} if "token_type_ids" in encoded else {}),
            "start_positions": start_position,
            "end_positions": end_position,
        })
    return features


def predict_answers(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int = 256,
                    batch_size: int = 32) -> list[dict[str, Any]]:
    """The best span of each example's context over all its windows: `{"answer", "score", "start", "end"}`.

    The score is the span's probability within its window (softmax of start times softmax of end).
    """
    import torch

    on_device(model)
    max_length = token_limit(model, max_length)
    best: list[dict[str, Any]] = [{"answer": "", "score": 0.0, "start": 0, "end": 0} for _ in examples]
    for offset, batch in zip(range(0, len(examples), batch_size), batches(examples, batch_size), strict=True):
        encoded = _windows(tokenizer, batch, max_length, padding=True, return_tensors="pt")
        inputs = {k: v.to(model.device) for k, v in encoded.items() if k not in WINDOW_BOOKKEEPING}
        with torch.inference_mode():
            output = model(**inputs)
        starts = output.start_logits.float().log_softmax(-1).cpu()
        ends = output.end_logits.float().log_softmax(-1).cpu()
        for window in range(len(encoded["input_ids"])):
            index = offset + int(encoded["overflow_to_sample_mapping"][window])
            context = examples[index]["context"]
            offsets = encoded["offset_mapping"][window].tolist()
            first, last = _context_span(encoded.sequence_ids(window))
            top_starts = starts[window, first:last + 1].topk(min(BEST_SPANS, last - first + 1)).indices + first
            top_ends = ends[window, first:last + 1].topk(min(BEST_SPANS, last - first + 1)).indices + first
            for s in top_starts.tolist():
                for e in top_ends.tolist():
                    if e < s or e - s + 1 > MAX_ANSWER_TOKENS:
                        continue
                    score = float((starts[window, s] + ends[window, e]).exp())
                    if score > best[index]["score"]:
                        start_char, end_char = offsets[s][0], offsets[e][1]
                        best[index] = {"answer": context[start_char:end_char], "score": score,
                                       "start": start_char, "end": end_char}
    return best


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"question", "context"}] -> [{"answer", "score", "start", "end"}]`."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return predict_answers(model, tokenizer, inputs, max_length=max_length)

    return predict


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
           batch_size: int) -> Scores:
    predictions = predict_answers(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    references = [e["answers"]["text"] for e in examples]
    metrics = question_answering_metrics(references, [p["answer"] for p in predictions])
    return metrics, sample_rows(examples, predictions, lambda e, p: (
        e["question"], " | ".join(dict.fromkeys(e["answers"]["text"])), p["answer"]))


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: load_reader(model_dir),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import DataCollatorWithPadding, set_seed

    set_seed(hyper.seed)
    model, tokenizer, _ = load_reader(model_dir)
    features = _training_features(tokenizer, train_examples, token_limit(model, hyper.max_length))
    losses = train(model, tokenizer, features, DataCollatorWithPadding(tokenizer), hyper, report)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

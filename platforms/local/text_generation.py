"""Text generation and chat with a causal language model on the local platform.

A row is split into a prompt and the completion the model should learn to write: the prompt and
completion columns, or a conversation up to its last assistant message and that message. Loss and
perplexity count completion tokens only, so a model is not rewarded for reciting the prompt.
Conversations are rendered with the tokenizer's chat template when it has one, else as
"role: content" lines ending in "assistant: ".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.lora import merged, with_lora
from platforms.local.metrics import perplexity, rouge_metrics
from platforms.local.task_contract import Scores, evaluation, sample_rows
from platforms.local.training import TaskResult, batches, on_device, token_limit, train

SAMPLE_INPUT = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
IGNORED = -100
# Generated text is capped here even when inputs may be longer, to keep try and evaluate quick.
MAX_NEW_TOKENS = 128
# Per-input generation settings a request may carry (Azure ML's `parameters`).
GENERATION_KEYS = ("max_new_tokens", "temperature", "top_p", "do_sample")


def load_lm(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(model_dir), tokenizer


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    lines = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return lines + ("assistant: " if generation_prompt else "")


def _prompt_and_completion(tokenizer: Any, example: dict[str, Any]) -> tuple[str, str, str]:
    """(prompt text, completion text as rendered, completion as a reference for ROUGE)."""
    if "messages" not in example:
        prompt = example["prompt"]
        separator = "" if not prompt or prompt[-1].isspace() else " "
        return prompt, separator + example.get("completion", ""), example.get("completion", "")
    messages = example["messages"]
    if messages[-1]["role"] != "assistant":
        return _render(tokenizer, messages, generation_prompt=True), "", ""
    prompt = _render(tokenizer, messages[:-1], generation_prompt=True)
    full = _render(tokenizer, messages, generation_prompt=False)
    completion = full[len(prompt):] if full.startswith(prompt) else messages[-1]["content"]
    return prompt, completion, messages[-1]["content"]


def _prompt_ids(tokenizer: Any, example: dict[str, Any], prompt: str) -> list[int]:
    """A rendered chat template already holds its special tokens; a plain prompt gets the tokenizer's."""
    templated = bool(tokenizer.chat_template) and "messages" in example
    return tokenizer(prompt, add_special_tokens=not templated)["input_ids"]


def _features(tokenizer: Any, example: dict[str, Any], max_length: int) -> dict[str, list[int]]:
    """Token ids with labels on the completion only; a long prompt loses its beginning first."""
    prompt, completion, _ = _prompt_and_completion(tokenizer, example)
    prompt_ids = _prompt_ids(tokenizer, example, prompt)
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids or completion_ids[-1] != tokenizer.eos_token_id:
        completion_ids.append(tokenizer.eos_token_id)
    completion_ids = completion_ids[:max_length - min(len(prompt_ids), max_length // 2)]
    prompt_ids = prompt_ids[max(0, len(prompt_ids) - (max_length - len(completion_ids))):]
    ids = prompt_ids + completion_ids
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORED] * len(prompt_ids) + completion_ids}


def _collator(tokenizer: Any) -> Any:
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORED)


def mean_completion_loss(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int,
                         batch_size: int) -> float:
    """Cross-entropy per completion token over all examples (not a mean of per-batch means)."""
    import torch

    on_device(model)
    collate, total, count = _collator(tokenizer), 0.0, 0
    for batch in batches([_features(tokenizer, e, token_limit(model, max_length)) for e in examples], batch_size):
        inputs = collate(batch).to(model.device)
        with torch.inference_mode():
            logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits.float()
        labels = inputs["labels"][:, 1:]
        total += float(torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORED, reduction="sum"))
        count += int((labels != IGNORED).sum())
    return total / count if count else math.nan


def generate_completions(model: Any, tokenizer: Any, examples: list[dict[str, Any]], *, max_length: int = 256,
                         batch_size: int = 32, settings: dict[str, Any] | None = None) -> list[str]:
    """Greedy (or sampled, if `settings` say so) continuations of each example's prompt."""
    import torch

    on_device(model)
    settings = dict(settings or {})
    max_new_tokens = int(settings.pop("max_new_tokens", min(max_length, MAX_NEW_TOKENS)))
    positions = token_limit(model, max_length + max_new_tokens)
    max_new_tokens = min(max_new_tokens, positions - 1)
    outputs = []
    for batch in batches(examples, batch_size):
        # A long prompt keeps its end, where the question and the generation prompt are.
        ids = [_prompt_ids(tokenizer, e, _prompt_and_completion(tokenizer, e)[0])[-(positions - max_new_tokens):]
               for e in batch]
        encoded = tokenizer.pad({"input_ids": ids}, padding_side="left", return_tensors="pt").to(model.device)
        with torch.inference_mode():
            generated = model.generate(**encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id, **{"do_sample": False, **settings})
        new_tokens = generated[:, encoded["input_ids"].shape[1]:]
        outputs.extend(text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return outputs


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"prompt"} | {"messages"}] -> [{"generated_text"}]`.

    An input may carry `max_new_tokens`, `temperature`, `top_p` and `do_sample`; inputs with the same
    settings are generated together.
    """
    model, tokenizer = load_lm(model_dir)

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        groups: dict[tuple, list[int]] = {}
        for index, item in enumerate(inputs):
            groups.setdefault(tuple((k, item[k]) for k in GENERATION_KEYS if k in item), []).append(index)
        results: list[dict[str, Any]] = [{} for _ in inputs]
        for settings, indexes in groups.items():
            texts = generate_completions(model, tokenizer, [inputs[i] for i in indexes], max_length=max_length,
                                         settings=dict(settings))
            for index, text in zip(indexes, texts, strict=True):
                results[index] = {"generated_text": text}
        return results

    return predict


def _input_text(example: dict[str, Any]) -> str:
    if "messages" not in example:
        return example["prompt"]
    users = [m["content"] for m in example["messages"] if m["role"] == "user"]
    return users[-1] if users else example["messages"][0]["content"]


def _score(model: Any, tokenizer: Any, examples: list[dict[str, Any]], max_length: int,
           batch_size: int) -> Scores:
    mean_loss = mean_completion_loss(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    predictions = generate_completions(model, tokenizer, examples, max_length=max_length, batch_size=batch_size)
    references = [_prompt_and_completion(tokenizer, e)[2] for e in examples]
    metrics = {"perplexity": perplexity(mean_loss), **rouge_metrics(references, predictions)}
    return metrics, sample_rows(examples, list(zip(references, predictions, strict=True)),
                                lambda e, rp: (_input_text(e), *rp))


def evaluate(model_dir: Path, examples: list[dict[str, Any]], *, max_length: int = 256,
             batch_size: int = 32, seed: int = 42) -> TaskResult:
    return evaluation(seed, lambda: (*load_lm(model_dir), None),
                      lambda model, tokenizer: _score(model, tokenizer, examples, max_length, batch_size))


def finetune(model_dir: Path, train_examples: list[dict[str, Any]], test_examples: list[dict[str, Any]],
             hyper: Hyperparameters, report: ProgressReport, out_dir: Path) -> TaskResult:
    from transformers import set_seed

    set_seed(hyper.seed)
    model, tokenizer = load_lm(model_dir)
    dataset = [_features(tokenizer, e, token_limit(model, hyper.max_length)) for e in train_examples]
    if hyper.lora:
        model = with_lora(model, "CAUSAL_LM")
    losses = train(model, tokenizer, dataset, _collator(tokenizer), hyper, report)
    model = merged(model)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    metrics, samples = _score(model, tokenizer, test_examples, hyper.max_length, hyper.batch_size * 2)
    return TaskResult(metrics=metrics, samples=samples, loss_history=losses)

"""Every fine-tune task of the local platform, end to end: the CLI queues it, a worker trains it.

Each row fine-tunes a tiny model (built here from a config, tokenizer trained on the data) on a real
public sample dataset with `fmbot finetune --wait --json`, then scores the fine-tuned model with
`fmbot evaluate --wait --json`, through Redis and a real `fmbot worker` process. The other tests
check each task's predictor (what try and deploy call), LoRA merging, and that the samples load as-is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from platforms.base import Hyperparameters
from platforms.datasets import ColumnMapping, load_examples
from platforms.local import (
    fill_mask,
    question_answering,
    summarization,
    text_generation,
    token_classification,
    translation,
)
from platforms.local.catalog import LocalCatalog
from platforms.tasks import TASKS, Task
from tests.helpers import DATA, fmbot_json
from tests.tiny_models import add_tiny_bert, add_tiny_gpt2, add_tiny_masked_bert, add_tiny_t5

TRAINING = ("--epochs", "1", "--max-length", "64", "--batch-size", "8", "--learning-rate", "1e-3")
# Untrained tiny generators never stop early, so their generated length is the cost of a test.
EVALUATION = ("--max-length", "64")


@dataclass(frozen=True)
class Row:
    task: Task
    build: Callable[..., Any]
    train: str
    mapping: str
    finetune_args: tuple[str, ...]
    test: str
    evaluate_args: tuple[str, ...] = ()

    def texts(self) -> list[str]:
        """The training file's text, for the tiny model's tokenizer."""
        return [text for example in self.examples(self.train) for text in _texts(example)]

    def examples(self, name: str) -> list[dict[str, Any]]:
        return load_examples(DATA / name, ColumnMapping.parse(self.mapping, self.task), name)


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [" ".join(value)] if all(isinstance(v, str) for v in value) else [t for v in value for t in _texts(v)]
    return []


ROWS = [
    Row(Task.TOKEN_CLASSIFICATION, add_tiny_bert, "conll_sample.json", "tokens=words,tags=ner",
        ("--validation-split", "0", "--test-split", "0.3"), "conll_sample.json"),
    Row(Task.QUESTION_ANSWERING, add_tiny_bert, "squad_sample.json",
        "question=question,context=context,answers=answers",
        ("--validation-split", "0", "--test-split", "0.25"), "squad_sample.json"),
    Row(Task.SUMMARIZATION, add_tiny_t5, "xsum_sample.json", "document=document,summary=summary",
        ("--validation-split", "0", "--test-split", "0.2", "--lora"), "xsum_sample.json"),
    Row(Task.TRANSLATION, add_tiny_t5, "wmt_en_ro_train.json", "source=translation.en,target=translation.ro",
        ("--test", str(DATA / "wmt_en_ro_test.json"), "--validation-split", "0", "--source-lang", "en",
         "--target-lang", "ro"),
        "wmt_en_ro_test.json", ("--source-lang", "en", "--target-lang", "ro")),
    Row(Task.TEXT_GENERATION, add_tiny_gpt2, "sft_chat.jsonl", "messages=messages",
        ("--validation-split", "0", "--test-split", "0.2"), "sft_chat.jsonl"),
]
TASK_KEYS = {
    Task.TOKEN_CLASSIFICATION: ("tokens", "tags"),
    Task.QUESTION_ANSWERING: ("question", "context", "answers"),
    Task.SUMMARIZATION: ("document", "summary"),
    Task.TRANSLATION: ("source", "target"),
    Task.TEXT_GENERATION: ("messages",),
}


@pytest.mark.parametrize(("row", "name", "rows"), [
    (ROWS[0], "conll_sample.json", 10), (ROWS[1], "squad_sample.json", 14), (ROWS[2], "xsum_sample.json", 10),
    (ROWS[3], "wmt_en_ro_train.json", 11), (ROWS[3], "wmt_en_ro_test.json", 20), (ROWS[4], "sft_chat.jsonl", 32),
], ids=lambda value: value if isinstance(value, str) else None)
def test_public_samples_load_as_they_are(row: Row, name: str, rows: int):
    """JSON Lines named .json, CRLF endings, flat SQuAD and nested `translation.en` all read unchanged."""
    examples = row.examples(name)
    assert len(examples) == rows
    assert set(examples[0]) == set(TASK_KEYS[row.task])


def assert_metrics(record: dict[str, Any], task: Task, worker) -> None:
    assert record["state"] == "completed", f"{record.get('error')}\n{worker.output()[-3000:]}"
    assert set(TASKS[task].metrics) <= set(record["metrics"])
    assert all(math.isfinite(value) and value >= 0 for value in record["metrics"].values())


@pytest.mark.parametrize("row", ROWS, ids=[row.task.value for row in ROWS])
def test_finetune_then_evaluate_on_the_cli(row: Row, settings: Settings, start_worker):
    base = row.build(Path(settings.fmbot_models_dir), row.texts(), tasks=(row.task,))
    worker = start_worker(settings)

    tuned = fmbot_json(settings, "finetune", "--wait", base.name, "--task", row.task, "--train", str(DATA / row.train),
                "--map", row.mapping, *TRAINING, *row.finetune_args)
    assert_metrics(tuned, row.task, worker)
    assert tuned["output_model"] == f"{base.name}-ft:1"
    assert tuned["loss_history"] and tuned["samples"]
    assert set(tuned["samples"][0]) == {"input", "reference", "prediction"}
    tuned_dir = LocalCatalog(Path(settings.fmbot_models_dir)).path(tuned["output_model"])
    if row.task == Task.TRANSLATION:  # the T5 prefix it was trained with is kept for evaluate and serving
        params = json.loads((tuned_dir / "config.json").read_text())["task_specific_params"]
        assert params["translation"]["prefix"] == "translate English to Romanian: "

    scored = fmbot_json(settings, "evaluate", "--wait", tuned["output_model"], "--task", row.task, "--test", str(DATA / row.test),
                 "--map", row.mapping, *EVALUATION, *row.evaluate_args)
    assert_metrics(scored, row.task, worker)
    assert len(scored["samples"]) == min(5, len(row.examples(row.test)))


def test_chat_completion_evaluates_a_chat_model(tmp_path: Path):
    """chat-completion is evaluate-only; it runs through the text-generation code on the platform."""
    from platforms.base import DataRef, EvaluateSpec
    from platforms.local import LocalPlatform

    row = ROWS[-1]
    card = add_tiny_gpt2(tmp_path, row.texts())
    platform = LocalPlatform(tmp_path, seed=False)
    outcome = platform.run_evaluation(EvaluateSpec(
        model=card.ref, task=Task.CHAT_COMPLETION, test=DataRef(path=str(DATA / row.train), name=row.train),
        mapping={"messages": "messages"}, max_length=32,
    ), lambda progress: None)
    assert set(TASKS[Task.CHAT_COMPLETION].metrics) <= set(outcome.metrics)
    # An untrained model is close to uniform over its 600-token vocabulary.
    assert 100 < outcome.metrics["perplexity"] < 6000


def test_text_generation_scores_prompt_completion_rows(tmp_path: Path):
    row = ROWS[-1]
    card = add_tiny_gpt2(tmp_path, row.texts())
    examples = [{"prompt": e["messages"][0]["content"], "completion": e["messages"][1]["content"]}
                for e in row.examples(row.train)[:6]]
    result = text_generation.evaluate(LocalCatalog(tmp_path).path(card.ref), examples, max_length=32)
    assert set(TASKS[Task.TEXT_GENERATION].metrics) <= set(result.metrics)
    assert [s["reference"] for s in result.samples] == [e["completion"] for e in examples[:5]]
    assert [s["input"] for s in result.samples] == [e["prompt"] for e in examples[:5]]


def test_lora_training_is_merged_into_a_plain_model(tmp_path: Path):
    row = ROWS[-1]
    catalog = LocalCatalog(tmp_path)
    card = add_tiny_gpt2(tmp_path, row.texts())
    examples = row.examples(row.train)
    out = tmp_path / "tuned"
    out.mkdir()
    before_tuning = text_generation.evaluate(catalog.path(card.ref), examples[24:], max_length=64)
    result = text_generation.finetune(catalog.path(card.ref), examples[:24], examples[24:], Hyperparameters(
        epochs=3, batch_size=8, max_length=64, learning_rate=1e-2, lora=True), lambda progress: None, out)

    assert not list(out.glob("adapter_*")), "adapters are merged, not saved beside the model"
    assert 1 < result.metrics["perplexity"] < before_tuning.metrics["perplexity"] * 0.95
    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(catalog.path(card.ref)).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert set(after) == set(before)
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed and all("attn" in name or "mlp" in name for name in changed)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    catalog = LocalCatalog(root)
    texts = {row.task: row.texts() for row in ROWS}
    cards = {
        "bert": add_tiny_bert(root, texts[Task.TOKEN_CLASSIFICATION] + texts[Task.QUESTION_ANSWERING]),
        "t5": add_tiny_t5(root, texts[Task.SUMMARIZATION] + texts[Task.TRANSLATION]),
        "gpt2": add_tiny_gpt2(root, texts[Task.TEXT_GENERATION]),
        "mlm": add_tiny_masked_bert(root, texts[Task.TOKEN_CLASSIFICATION] + ["Paris is the capital of France."]),
    }
    return {key: catalog.path(card.ref) for key, card in cards.items()}


def test_token_classification_predictor(tiny_models: dict[str, Path]):
    predict = token_classification.load_predictor(tiny_models["bert"])
    text, tokens = predict([token_classification.SAMPLE_INPUT, {"tokens": ["CHICAGO", "AT", "ATLANTA"]}])
    words = token_classification.SAMPLE_INPUT["text"].split()
    assert text["tokens"] == words and len(text["tags"]) == len(words)
    for entity in text["entities"]:
        assert token_classification.SAMPLE_INPUT["text"][entity["start"]:entity["end"]] == entity["word"]
    assert tokens["tokens"] == ["CHICAGO", "AT", "ATLANTA"] and len(tokens["tags"]) == 3


def test_question_answering_predictor_returns_a_span_of_the_context(tiny_models: dict[str, Path]):
    predict = question_answering.load_predictor(tiny_models["bert"])
    [answer] = predict([question_answering.SAMPLE_INPUT])
    context = question_answering.SAMPLE_INPUT["context"]
    assert set(answer) == {"answer", "score", "start", "end"}
    assert answer["answer"] and context[answer["start"]:answer["end"]] == answer["answer"]
    assert 0 < answer["score"] <= 1


def test_summarization_and_translation_predictors(tiny_models: dict[str, Path]):
    summaries = summarization.load_predictor(tiny_models["t5"], max_length=16)([summarization.SAMPLE_INPUT] * 2)
    translations = translation.load_predictor(tiny_models["t5"], max_length=16)([translation.SAMPLE_INPUT])
    assert len(summaries) == 2 and all(isinstance(s["summary"], str) for s in summaries)
    assert isinstance(translations[0]["translation"], str)


def test_text_generation_predictor_takes_prompts_and_messages(tiny_models: dict[str, Path]):
    predict = text_generation.load_predictor(tiny_models["gpt2"], max_length=16)
    results = predict([text_generation.SAMPLE_INPUT, {"prompt": "The sky is", "max_new_tokens": 4},
                       {"prompt": "The sky is", "max_new_tokens": 4, "do_sample": True, "temperature": 0.7}])
    assert [set(r) for r in results] == [{"generated_text"}] * 3
    assert results[0]["generated_text"] and all(isinstance(r["generated_text"], str) for r in results)


def test_fill_mask_predictor_ranks_tokens_for_the_mask(tiny_models: dict[str, Path]):
    predict = fill_mask.load_predictor(tiny_models["mlm"])
    [result] = predict([fill_mask.SAMPLE_INPUT])
    predictions = result["predictions"]
    assert len(predictions) == fill_mask.TOP_K
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1
    assert all("[MASK]" not in p["sequence"] and p["token"] in p["sequence"] for p in predictions)

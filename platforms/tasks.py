"""The tasks fmbot knows, the column keys each needs, and the metrics each reports.

One table serves the CLI's `--map` parsing, the Slack forms' column selects, dataset
validation and both platforms, so a task's shape is written down exactly once. Names follow
Azure ML's (task names, column keys, metric names) so results read the same on both platforms.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from platforms.errors import FmbotError


class Task(StrEnum):
    TEXT_CLASSIFICATION = "text-classification"
    TEXT_CLASSIFICATION_MULTILABEL = "text-classification-multilabel"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"
    SUMMARIZATION = "summarization"
    TRANSLATION = "translation"
    TEXT_GENERATION = "text-generation"
    CHAT_COMPLETION = "chat-completion"
    FILL_MASK = "fill-mask"
    IMAGE_CLASSIFICATION = "image-classification"
    TEXT_TO_IMAGE = "text-to-image"


class TaskSpec(BaseModel):
    task: Task
    required_keys: tuple[str, ...]
    optional_keys: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    finetune: bool = False
    evaluate: bool = False
    # When set, at least one of these groups of optional keys must be mapped in full.
    alternatives: tuple[tuple[str, ...], ...] = ()
    # Column names commonly found in public datasets, tried in order when guessing a mapping.
    guesses: dict[str, tuple[str, ...]] = {}

    @property
    def keys(self) -> tuple[str, ...]:
        return self.required_keys + self.optional_keys


TASKS: dict[Task, TaskSpec] = {
    spec.task: spec
    for spec in (
        TaskSpec(
            task=Task.TEXT_CLASSIFICATION,
            required_keys=("sentence1", "label"),
            optional_keys=("sentence2",),
            metrics=(
                "accuracy",
                "f1_score_macro",
                "f1_score_micro",
                "f1_score_weighted",
                "precision_score_macro",
                "recall_score_macro",
                "matthews_correlation",
            ),
            finetune=True,
            evaluate=True,
            guesses={
                "sentence1": ("sentence1", "text", "sentence", "input_string", "review", "premise", "question1", "#1 String"),
                "sentence2": ("sentence2", "hypothesis", "question2", "#2 String"),
                "label": ("label", "labels", "label_string", "class", "target", "stars", "sentiment", "Quality"),
            },
        ),
        TaskSpec(
            task=Task.TEXT_CLASSIFICATION_MULTILABEL,
            required_keys=("sentence1", "label"),
            optional_keys=("sentence2",),
            metrics=(
                "accuracy",
                "f1_score_macro",
                "f1_score_micro",
                "f1_score_weighted",
                "precision_score_macro",
                "precision_score_micro",
                "precision_score_weighted",
                "recall_score_macro",
                "recall_score_micro",
                "recall_score_weighted",
                "hamming_loss",
            ),
            finetune=True,
            evaluate=True,
            guesses={
                "sentence1": ("sentence1", "text", "sentence", "input_string", "comment_text", "abstract"),
                "sentence2": ("sentence2",),
                "label": ("labels", "label", "categories", "tags", "target", "emotions"),
            },
        ),
        TaskSpec(
            task=Task.TOKEN_CLASSIFICATION,
            required_keys=("tokens", "tags"),
            metrics=(
                "accuracy",
                "f1_score_macro",
                "f1_score_micro",
                "f1_score_weighted",
                "precision_score_macro",
                "precision_score_micro",
                "precision_score_weighted",
                "recall_score_macro",
                "recall_score_micro",
                "recall_score_weighted",
            ),
            finetune=True,
            evaluate=True,
            guesses={"tokens": ("tokens", "words"), "tags": ("tags", "ner_tags", "ner", "labels")},
        ),
        TaskSpec(
            task=Task.QUESTION_ANSWERING,
            required_keys=("question", "context"),
            optional_keys=("answers", "answer_text", "answer_start"),
            alternatives=(("answers",), ("answer_text",)),
            metrics=("exact_match", "f1_score"),
            finetune=True,
            evaluate=True,
            guesses={
                "question": ("question",),
                "context": ("context",),
                "answers": ("answers",),
                "answer_text": ("answer_text",),
                "answer_start": ("answer_start",),
            },
        ),
        TaskSpec(
            task=Task.SUMMARIZATION,
            required_keys=("document", "summary"),
            metrics=("rouge1", "rouge2", "rougeL", "rougeLsum"),
            finetune=True,
            evaluate=True,
            guesses={"document": ("document", "article", "text"), "summary": ("summary", "highlights")},
        ),
        TaskSpec(
            task=Task.TRANSLATION,
            required_keys=("source", "target"),
            metrics=("bleu_1", "bleu_2", "bleu_3", "bleu_4", "sacrebleu"),
            finetune=True,
            evaluate=True,
            guesses={"source": ("source", "translation.en", "en"), "target": ("target", "translation.ro", "ro")},
        ),
        TaskSpec(
            task=Task.TEXT_GENERATION,
            required_keys=(),
            optional_keys=("messages", "prompt", "completion"),
            alternatives=(("messages",), ("prompt", "completion")),
            metrics=("perplexity", "rouge1", "rouge2", "rougeL", "rougeLsum"),
            finetune=True,
            evaluate=True,
            guesses={"messages": ("messages",), "prompt": ("prompt",), "completion": ("completion", "response")},
        ),
        TaskSpec(
            task=Task.CHAT_COMPLETION,
            required_keys=(),
            optional_keys=("messages", "prompt", "completion"),
            alternatives=(("messages",), ("prompt", "completion")),
            metrics=("perplexity", "rouge1", "rouge2", "rougeL", "rougeLsum"),
            evaluate=True,
            guesses={"messages": ("messages",), "prompt": ("prompt",), "completion": ("completion", "response")},
        ),
        TaskSpec(task=Task.FILL_MASK, required_keys=()),
        TaskSpec(task=Task.IMAGE_CLASSIFICATION, required_keys=()),
        TaskSpec(task=Task.TEXT_TO_IMAGE, required_keys=()),
    )
}


class UnknownTask(FmbotError, ValueError):
    """A task name no platform knows; the message lists the ones that exist."""


# Tasks whose label column holds one class per row (stratified splits, a two-class minimum).
SINGLE_LABEL_TASKS = (Task.TEXT_CLASSIFICATION,)
# Tasks a sequence classifier does: a model that classifies texts can be given either head.
CLASSIFICATION_TASKS = (Task.TEXT_CLASSIFICATION, Task.TEXT_CLASSIFICATION_MULTILABEL)
# The score above which a multi-label model says a label applies (try, endpoints, evaluation).
MULTILABEL_THRESHOLD = 0.5

# Tasks whose (larger, generative) models may be fine-tuned with LoRA adapters.
LORA_TASKS = (Task.SUMMARIZATION, Task.TRANSLATION, Task.TEXT_GENERATION)


def parse_task(name: str) -> Task:
    """Turn user text into a Task, or say which tasks exist."""
    try:
        return Task(name.strip().lower())
    except ValueError:
        known = ", ".join(t.value for t in Task)
        raise UnknownTask(f'unknown task "{name}". Use one of: {known}') from None

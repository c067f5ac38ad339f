"""Which local module runs each task: the one table the platform and its endpoints read.

Each module keeps `task_contract.TaskModule`; those whose task takes a dataset also keep
`task_contract.TrainableTaskModule`."""

from __future__ import annotations

from platforms.local import (
    fill_mask,
    question_answering,
    summarization,
    text_classification,
    text_classification_multilabel,
    text_generation,
    token_classification,
    translation,
)
from platforms.local.task_contract import TaskModule
from platforms.tasks import Task

TASK_MODULES: dict[Task, TaskModule] = {
    Task.TEXT_CLASSIFICATION: text_classification,
    Task.TEXT_CLASSIFICATION_MULTILABEL: text_classification_multilabel,
    Task.TOKEN_CLASSIFICATION: token_classification,
    Task.QUESTION_ANSWERING: question_answering,
    Task.SUMMARIZATION: summarization,
    Task.TRANSLATION: translation,
    Task.TEXT_GENERATION: text_generation,
    Task.CHAT_COMPLETION: text_generation,
    Task.FILL_MASK: fill_mask,
}

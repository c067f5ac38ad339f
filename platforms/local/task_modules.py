"""Which local module runs each task: the one table the platform and its endpoints read."""

from __future__ import annotations

from types import ModuleType

from platforms.local import (
    fill_mask,
    question_answering,
    summarization,
    text_classification,
    text_generation,
    token_classification,
    translation,
)
from platforms.tasks import Task

TASK_MODULES: dict[Task, ModuleType] = {
    Task.TEXT_CLASSIFICATION: text_classification,
    Task.TOKEN_CLASSIFICATION: token_classification,
    Task.QUESTION_ANSWERING: question_answering,
    Task.SUMMARIZATION: summarization,
    Task.TRANSLATION: translation,
    Task.TEXT_GENERATION: text_generation,
    Task.CHAT_COMPLETION: text_generation,
    Task.FILL_MASK: fill_mask,
}

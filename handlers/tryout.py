"""`try`: one prediction from a catalog model, on the user's text or on the task's sample input.

Runs in the caller (CLI, or the Slack listener's background thread), not through the queue: a
prediction takes a second or two, and a queued job would add a worker round trip to every try.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel

from handlers.catalog import require_task
from handlers.errors import UserError
from platforms.inputs import InputError, text_input
from platforms.tasks import Task
from workers.runtime import Runtime

HINTS = {
    Task.TEXT_CLASSIFICATION: 'Give a text, a pair as "FIRST ||| SECOND", or JSON {"sentence1": ..., "sentence2": ...}',
    Task.TEXT_CLASSIFICATION_MULTILABEL: 'Give a text, a pair as "FIRST ||| SECOND", or JSON {"sentence1": ...}',
    Task.QUESTION_ANSWERING: 'Give "QUESTION ||| CONTEXT", or JSON {"question": ..., "context": ...}',
    Task.TOKEN_CLASSIFICATION: 'Give a sentence, or JSON {"tokens": [...]}',
    Task.TEXT_GENERATION: 'Give a prompt, or JSON {"messages": [{"role": "user", "content": ...}]}',
    Task.CHAT_COMPLETION: 'Give a message, or JSON {"messages": [{"role": "user", "content": ...}]}',
}


class TryResult(BaseModel):
    model: str
    task: Task
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    sample_input: bool
    seconds: float


def try_model(rt: Runtime, model: str, text: str = "", task: Task | None = None) -> TryResult:
    card = rt.platform.get_model(model)
    task = require_task(card, task, served=True)
    if text.strip():
        try:
            inputs = [text_input(task, text)]
        except InputError as exc:
            raise UserError(str(exc), hint=HINTS.get(task)) from None
    else:
        inputs = [rt.platform.sample_input(task)]
    started = time.monotonic()
    outputs = rt.platform.try_model(card.ref, task, inputs)
    return TryResult(model=card.ref, task=task, inputs=inputs, outputs=outputs, sample_input=not text.strip(),
                     seconds=round(time.monotonic() - started, 3))

"""`try`: one prediction from a catalog model, on the user's text or on the task's sample input.

A try runs in a warm try service (bot/try_service.py, one beside each `fmbot worker`, where the
models are), never in the bot: loading a model there would let anyone make the bot load a large
one, and its torch import alone costs the CLI ~5 s a call. The caller hands the request over
through Redis and waits for the answer; the service keeps the last models tried loaded, one lock
each. Only the operator's CLI, with no service running, predicts in its own process.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from pydantic import BaseModel

from handlers import limits
from handlers.catalog import require_task
from handlers.errors import UserError
from platforms.base import Platform
from platforms.errors import FmbotError
from platforms.inputs import InputError, text_input
from platforms.tasks import Task
from workers import keys
from workers.runtime import Runtime

HINTS = {
    Task.TEXT_CLASSIFICATION: 'Give a text, a pair as "FIRST ||| SECOND", or JSON {"sentence1": ..., "sentence2": ...}',
    Task.TEXT_CLASSIFICATION_MULTILABEL: 'Give a text, a pair as "FIRST ||| SECOND", or JSON {"sentence1": ...}',
    Task.QUESTION_ANSWERING: 'Give "QUESTION ||| CONTEXT", or JSON {"question": ..., "context": ...}',
    Task.TOKEN_CLASSIFICATION: 'Give a sentence, or JSON {"tokens": [...]}',
    Task.TEXT_GENERATION: 'Give a prompt, or JSON {"messages": [{"role": "user", "content": ...}]}',
    Task.CHAT_COMPLETION: 'Give a message, or JSON {"messages": [{"role": "user", "content": ...}]}',
}
CLAIM_SECONDS = 5.0  # a running service takes a request within milliseconds; this long means none runs
ANSWER_SECONDS = 300.0  # loading a large model, then predicting
NO_SERVICE = ("no try service is running, so nothing can load the model",
              "Start `fmbot worker` (it runs one beside it, unless FMBOT_TRY_SERVICE=false)")


class NoService(UserError):
    """No try service took the request (none runs, or the last one just stopped)."""

    def __init__(self, message: str, hint: str):
        super().__init__(message, hint=hint)


class TryResult(BaseModel):
    model: str
    task: Task
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    sample_input: bool
    seconds: float


def try_model(rt: Runtime, model: str, text: str = "", task: Task | None = None, *,
              requester: str | None = None, in_process: bool = False) -> TryResult:
    """Ask a warm try service; with none running, predict here only when `in_process` (the CLI)."""
    if requester is not None:
        limits.check_try(rt, requester)
    if rt.redis.exists(keys.try_alive()):
        try:
            return ask_service(rt, model, text, task)
        except NoService:
            if not in_process:
                raise
    elif not in_process:
        raise NoService(*NO_SERVICE)
    return predict(rt.platform, model, text, task)


def predict(platform: Platform, model: str, text: str = "", task: Task | None = None) -> TryResult:
    """The prediction itself, where the model is (a try service, or the operator's CLI)."""
    card = platform.get_model(model)
    task = require_task(card, task, served=True)
    if text.strip():
        try:
            inputs = [text_input(task, text)]
        except InputError as exc:
            raise UserError(str(exc), hint=HINTS.get(task)) from None
    else:
        inputs = [platform.sample_input(task)]
    started = time.monotonic()
    outputs = platform.try_model(card.ref, task, inputs)
    return TryResult(model=card.ref, task=task, inputs=inputs, outputs=outputs, sample_input=not text.strip(),
                     seconds=round(time.monotonic() - started, 3))


def ask_service(rt: Runtime, model: str, text: str, task: Task | None) -> TryResult:
    """Queue the request for the try services, then wait for one to claim it and for its answer.
    A request nobody claims in CLAIM_SECONDS expires, so a service started later never runs it."""
    request_id = secrets.token_hex(8)
    reply = keys.try_reply(request_id)
    request = {"id": request_id, "model": model, "text": text, "task": task.value if task else None,
               "expires": time.time() + CLAIM_SECONDS}
    rt.redis.rpush(keys.try_requests(), json.dumps(request))
    try:
        claimed = rt.redis.blpop([reply], timeout=CLAIM_SECONDS)
        if claimed is None:
            raise NoService(*NO_SERVICE)
        answer = rt.redis.blpop([reply], timeout=ANSWER_SECONDS)
    finally:
        rt.redis.delete(reply)
    if answer is None:
        raise UserError(f"{model} did not answer within {ANSWER_SECONDS:.0f} s", hint="Try again, or a smaller model")
    body = json.loads(answer[1])
    if "error" in body:
        error = body["error"]
        raise UserError(error["message"], hint=error.get("hint"), field=error.get("field"))
    return TryResult.model_validate(body["result"])


def answer(platform: Platform, request: dict[str, Any]) -> dict[str, Any]:
    """A try service's answer to one request: the result, or the error a user can act on."""
    try:
        task = Task(request["task"]) if request.get("task") else None
        return {"result": predict(platform, request["model"], request.get("text") or "", task).model_dump(mode="json")}
    except FmbotError as exc:
        return {"error": {"message": exc.message, "hint": exc.hint, "field": exc.field}}

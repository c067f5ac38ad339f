"""State a multi-step form carries between steps, in `private_metadata` or, when too big, in Redis.

Slack gives a view 3,000 characters of private metadata; a wizard that remembers a file's columns
can outgrow that, so larger state is parked in Redis under a random key kept in the metadata. A
form keeps that one key through all its steps (`form_id`), so each step overwrites its state
rather than leaving another copy behind for a day.
"""

from __future__ import annotations

import secrets

from pydantic import BaseModel
from redis import Redis

from bot.forms import FORM_TTL_SECONDS, FormAnswers
from bot.slack.limits import PRIVATE_METADATA
from platforms.base import Hyperparameters
from workers import keys
from workers.ledger import JobKind

_REDIS_PREFIX = "redis:"


class ComputeChoice(BaseModel):
    """What the shared compute step asked: where to run, on how many instances, with which settings.
    Each job kind's starter reads what it needs (an evaluation runs on one instance)."""

    compute: str
    instances: int = 1
    hyper: Hyperparameters


class FormState(FormAnswers):
    kind: JobKind
    channel: str
    user: str
    # A comparison's models, and those left out (with why) once the task is known.
    models: list[str] = []
    left_out: dict[str, str] = {}
    error: str | None = None
    # The data preview shown with the mapping (mrkdwn), the bad rows found, whether to skip them.
    preview: str | None = None
    bad_rows: int = 0
    skip_bad_rows: bool = False
    form_id: str | None = None


def dump_state(state: FormState, redis: Redis) -> str:
    text = state.model_dump_json(exclude_defaults=True)
    if len(text) <= PRIVATE_METADATA:
        return text
    state.form_id = state.form_id or secrets.token_hex(8)
    redis.set(keys.form(state.form_id), state.model_dump_json(), ex=FORM_TTL_SECONDS)
    return _REDIS_PREFIX + state.form_id


def load_state(metadata: str, redis: Redis) -> FormState:
    if metadata.startswith(_REDIS_PREFIX):
        raw = redis.get(keys.form(metadata.removeprefix(_REDIS_PREFIX)))
        if raw is None:
            raise LookupError("this form has expired; open it again")
        return FormState.model_validate_json(raw)
    return FormState.model_validate_json(metadata)

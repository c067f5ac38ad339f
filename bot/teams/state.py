"""State a Teams dialog keeps between its steps: in Redis, under a random id the card carries.

Teams posts an `Action.Submit`'s data back with the inputs on `task/submit`, and that data passes
through the user's client: anything in it can be changed. So the card carries only the form's id;
the state (the files already downloaded for this form, their columns, the mapping) stays in Redis,
bound to the person who opened the form, and a submit of someone else's or an expired form is
refused.
"""

from __future__ import annotations

import secrets
from typing import Literal

from pydantic import BaseModel
from redis import Redis

from handlers.errors import UserError
from bot.forms import FORM_TTL_SECONDS, FormAnswers
from platforms.datasets import Preview
from workers import keys



class FormState(FormAnswers):
    id: str = ""
    owner: str = ""  # the Entra id of whoever opened the form
    kind: Literal["finetune", "evaluate"]
    # A comparison (an evaluate form for several models): its models, and those left out (with why)
    # once the task is known.
    models: list[str] = []
    left_out: dict[str, str] = {}
    # The preview shown with the mapping, the bad rows found, whether to skip them.
    preview: Preview | None = None
    bad_rows: int = 0
    skip_bad_rows: bool = False


class SharedFile(BaseModel):
    """A file someone shared in the conversation, as Teams described it (download.info)."""

    id: str
    name: str
    url: str
    size: int | None = None


def save(redis: Redis, state: FormState) -> FormState:
    """Store the state (a new form gets its id); returns it as stored."""
    if not state.id:
        state = state.model_copy(update={"id": secrets.token_urlsafe(12)})
    redis.set(keys.teams_form(state.id), state.model_dump_json(), ex=FORM_TTL_SECONDS)
    return state


def load(redis: Redis, form_id: str, user: str) -> FormState:
    raw = redis.get(keys.teams_form(form_id)) if form_id else None
    if raw is None:
        raise UserError("this form has expired", hint="Open it again")
    state = FormState.model_validate_json(raw)
    if state.owner != user:
        raise UserError("this form was opened by someone else", hint="Open your own from the card")
    return state


def discard(redis: Redis, state: FormState) -> None:
    redis.delete(keys.teams_form(state.id))

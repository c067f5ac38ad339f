"""State a Teams dialog carries between its steps: in the submit button's own data.

Teams posts an `Action.Submit`'s data back with the inputs on `task/submit`, so the state of a
three-step form rides in the card it belongs to; the card size limit bounds it (a file's columns
are cut to the choices a select can show). The conversation it came from is re-read from the
invoke itself, never trusted from the card.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from platforms.base import DataRef


class FormState(BaseModel):
    kind: Literal["finetune", "evaluate"]
    model: str | None = None
    task: str | None = None
    train: DataRef | None = None
    validation: DataRef | None = None
    test: DataRef | None = None
    validation_split: float = 10.0
    test_split: float = 10.0
    columns: list[str] = []
    mapping: dict[str, str] = {}


class SharedFile(BaseModel):
    """A file someone shared in the conversation, as Teams described it (download.info)."""

    id: str
    name: str
    url: str
    size: int | None = None

"""The one base of every error a user can act on, whichever layer raises it.

An `FmbotError` carries the message for people, a hint saying what to do, the form field it belongs
to (so a form marks that field without searching the text), and optionally the command that fixes
it (`remedy`), which a surface names only when it offers that command. `str()` reads the same on every
surface: message and hint, without the command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FmbotError(Exception):
    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 remedy: tuple[str, str] | None = None):
        self.message, self.hint, self.field, self.remedy = message, hint, field, remedy
        super().__init__(f"{message}. {hint}" if hint else message)

    @property
    def on_field(self) -> str:
        """What a form shows beside the field the error belongs to."""
        return str(self)


def describe(error: Mapping[str, Any]) -> str:
    """One of pydantic's complaints as a person reads it: the field, what is wrong, what they gave."""
    field = ".".join(str(part) for part in error["loc"]) or "input"
    given = error.get("input")
    shown = f" (you gave {given!r})" if isinstance(given, (int, float, str)) and len(str(given)) < 80 else ""
    return f"{field}: {error['msg'].removeprefix('Value error, ')}{shown}"

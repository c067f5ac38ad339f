"""The one error type handlers raise for bad requests, and how any user-facing error reads.

Dataset and platform errors already carry a message meant for people; `user_message` returns
that text for every error a user can fix and None for bugs, which are logged with a trace id.
"""

from __future__ import annotations

from pydantic import ValidationError

from platforms.base import PlatformError
from platforms.datasets import DatasetError
from platforms.tasks import UnknownTask


class UserError(Exception):
    def __init__(self, message: str, *, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(f"{message}. {hint}" if hint else message)


def user_message(exc: BaseException) -> str | None:
    if isinstance(exc, (UserError, DatasetError, PlatformError, UnknownTask)):
        return str(exc)
    if isinstance(exc, ValidationError):
        problems = []
        for error in exc.errors()[:3]:
            field = ".".join(str(part) for part in error["loc"]) or "input"
            given = error.get("input")
            shown = f" (you gave {given!r})" if isinstance(given, (int, float, str)) and len(str(given)) < 80 else ""
            problems.append(f"{field}: {error['msg'].removeprefix('Value error, ')}{shown}")
        return "; ".join(problems)
    return None

"""The error type handlers raise for bad requests, and how any user-facing error reads.

Every error a user can fix is an `FmbotError` (platforms/errors.py: platform, dataset, task and
handler errors alike) or a pydantic `ValidationError` of a request; `user_message` returns its text
and None for bugs, which are logged with a trace id.
"""

from __future__ import annotations

from pydantic import ValidationError

from handlers.registry import Surface, mention
from platforms.errors import FmbotError, describe


class UserError(FmbotError):
    """A request a handler refuses: what is wrong with it and what to do instead."""


def user_message(exc: BaseException, surface: Surface = Surface.CLI) -> str | None:
    """The text `surface` shows for `exc`; a remedy command is named only where `surface` offers it."""
    if isinstance(exc, FmbotError):
        command = mention(*exc.remedy, surface=surface) if exc.remedy else None
        return f"{exc}: {command}" if command else str(exc)
    if isinstance(exc, ValidationError):
        return "; ".join(describe(error) for error in exc.errors()[:3])
    return None

"""The one base of every error a user can act on, whichever layer raises it.

An `FmbotError` carries the message for people, a hint saying what to do, the form field it belongs
to (so a form marks that field without searching the text), and optionally the command that fixes
it (`remedy`), which a surface names only when it offers that command. `str()` reads the same on every
surface: message and hint, without the command.
"""

from __future__ import annotations


class FmbotError(Exception):
    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None,
                 remedy: tuple[str, str] | None = None):
        self.message, self.hint, self.field, self.remedy = message, hint, field, remedy
        super().__init__(f"{message}. {hint}" if hint else message)

"""The one error of this package: what is wrong with a user's data, where, and what to do."""

from __future__ import annotations

from platforms.errors import FmbotError


class DatasetError(FmbotError, ValueError):
    """A problem with a user's data, phrased for the user: where it is (file, line) and what to do;
    the column it is about is its field."""

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None,
                 column: str | None = None, hint: str | None = None):
        self.file, self.where, self.column = file, where, column
        super().__init__(message, hint=hint, field=column)

    def __str__(self) -> str:
        place = " ".join(p for p in (self.file, self.where) if p)
        text = f"{place}: {self.message}" if place else self.message
        return f"{text}. {self.hint}" if self.hint else text


"""Bad rows: refused by default with how many there are and where; skipped when the user asks.

A bad row is one whose record reads but does not make an example (a missing or empty column, a list
where one label is expected, tags that do not match the tokens). A file that cannot be read on (not
JSON, ragged CSV) is not a bad row: those still stop the file at their line.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from platforms.datasets.errors import DatasetError

SHOWN = 5  # bad rows named in a refusal and kept in a job record


class RowPolicy(BaseModel):
    """Whether bad rows are skipped, and the share of a file above which skipping is refused."""

    skip: bool = False
    max_fraction: float = Field(0.05, ge=0, le=1)


class BadRow(BaseModel):
    where: str | None = None
    column: str | None = None
    problem: str

    def text(self) -> str:
        place = " ".join(p for p in (self.where, f'"{self.column}"' if self.column else None) if p)
        return f"{place}: {self.problem}" if place else self.problem


class BadRows:
    """The bad rows of one file as it is read: all counted, the first few kept with their error."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[BadRow] = []
        self.first_error: DatasetError | None = None

    def add(self, error: DatasetError) -> None:
        self.count += 1
        if self.first_error is None:
            self.first_error = error
        if len(self.first) < SHOWN:
            self.first.append(BadRow(where=error.where, column=error.column, problem=error.message))

    def check(self, good: int, policy: RowPolicy, label: str) -> None:
        """Refuse a file with bad rows unless they may be skipped; refuse skipping above the limit."""
        if not self.count:
            return
        total = good + self.count
        listed = "; ".join(row.text() for row in self.first) + (" …" if self.count > len(self.first) else "")
        summary = f"{self.count} of {total} rows are bad ({listed})"
        if not policy.skip:
            first = self.first_error
            assert first is not None
            hint = f"{first.hint}. " if first.hint else ""
            raise BadRowsError(first.message, file=first.file, where=first.where, column=first.column,
                               hint=f"{hint}{summary}: fix them, or skip them", bad=self, total=total)
        if self.count > policy.max_fraction * total:
            raise BadRowsError(f"{summary}, more than the {policy.max_fraction:.0%} that may be skipped",
                               file=label, hint="Fix the file: this many bad rows usually means a wrong column "
                                                "mapping or format", bad=self, total=total)


class BadRowsError(DatasetError):
    """A file refused for its bad rows; `bad` says how many and where, so a form can offer to skip."""

    def __init__(self, message: str, *, bad: BadRows, total: int, **kwargs: str | None):
        self.bad, self.total = bad, total
        super().__init__(message, **kwargs)

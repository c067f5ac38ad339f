"""Which of the user's columns plays each of the task's roles: parsed, checked and guessed."""

from __future__ import annotations

from pydantic import BaseModel

from platforms.datasets.errors import DatasetError
from platforms.tasks import TASKS, Task


class ColumnMapping(BaseModel):
    """Which of the user's columns plays each of the task's roles (`sentence1` -> `review`)."""

    task: Task
    columns: dict[str, str]

    @classmethod
    def parse(cls, text: str, task: Task) -> ColumnMapping:
        """Parse `key=column,key=column` as typed on the CLI or in a form."""
        columns: dict[str, str] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            key, sep, column = part.partition("=")
            if not sep or not key.strip() or not column.strip():
                raise DatasetError(
                    f'"{part}" is not KEY=COLUMN',
                    where="column mapping",
                    hint=f"Write e.g. {example_mapping(task)}",
                )
            columns[key.strip()] = column.strip()
        return cls.build(columns, task)

    @classmethod
    def build(cls, columns: dict[str, str], task: Task) -> ColumnMapping:
        spec = TASKS[task]
        unknown = [key for key in columns if key not in spec.keys]
        if unknown:
            raise DatasetError(
                f'"{unknown[0]}" is not a column key of {task}',
                where="column mapping",
                hint=f"Keys for {task}: {', '.join(spec.keys)}",
            )
        missing = [key for key in spec.required_keys if key not in columns]
        if missing:
            raise DatasetError(
                f'no column is mapped to "{missing[0]}"',
                where="column mapping",
                hint=f"Add {missing[0]}=<your column>, e.g. {example_mapping(task)}",
            )
        if spec.alternatives and not any(all(k in columns for k in group) for group in spec.alternatives):
            options = " or ".join("+".join(group) for group in spec.alternatives)
            raise DatasetError(
                f"{task} needs {options} mapped", where="column mapping", hint=f"e.g. {example_mapping(task)}"
            )
        return cls(task=task, columns=columns)

    def text(self) -> str:
        return ",".join(f"{key}={column}" for key, column in self.columns.items())


def example_mapping(task: Task) -> str:
    spec = TASKS[task]
    keys = spec.required_keys or (spec.alternatives[0] if spec.alternatives else ())
    return ",".join(f"{key}={spec.guesses.get(key, (key,))[0]}" for key in keys) or "(no columns needed)"


def guess_mapping(columns: list[str], task: Task) -> dict[str, str]:
    """The best guess per key from common public column names; keys with no match are left out."""
    spec = TASKS[task]
    lowered = {column.lower(): column for column in columns}
    guess: dict[str, str] = {}
    for key in spec.keys:
        for candidate in spec.guesses.get(key, (key,)):
            column = lowered.get(candidate.lower())
            if column and column not in guess.values():
                guess[key] = column
                break
    return guess

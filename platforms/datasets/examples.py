"""Turning records into examples keyed by the task's column keys, one builder per task.

Each rejection names the file, the line and the column and says what to do: the message goes to
the user verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from platforms.datasets.errors import DatasetError
from platforms.datasets.mapping import ColumnMapping
from platforms.datasets.reading import Row, lookup, read_rows
from platforms.tasks import Task

_BLANK_WORDS = ("nan", "null", "none")
_ABSENT = object()


def is_blank(value: Any) -> bool:
    """Empty, or a missing-value marker; only short strings are lowered (texts can be long)."""
    if value is None:
        return True
    if isinstance(value, str):
        stripped = value.strip()
        return not stripped or (len(stripped) <= 4 and stripped.lower() in _BLANK_WORDS)
    return isinstance(value, float) and math.isnan(value)


def _text(row: Row, mapping: ColumnMapping, key: str, label: str, *, required: bool = True) -> str | None:
    column = mapping.columns.get(key)
    if column is None:
        return None
    value = row.values.get(column, _ABSENT)
    found = value is not _ABSENT
    if not found:
        found, value = lookup(row.values, column)
    if not found:
        if not required:
            return None
        raise DatasetError(
            f'column "{column}" is missing',
            file=label,
            where=row.where,
            column=column,
            hint=f'Every row needs "{column}" (mapped to {key}); fix the row or map another column',
        )
    if is_blank(value):
        raise DatasetError(
            f'column "{column}" is empty',
            file=label,
            where=row.where,
            column=column,
            hint=f"Give every row a value for {key}, or remove the row",
        )
    if isinstance(value, (dict, list)):
        raise DatasetError(
            f'column "{column}" holds a {type(value).__name__}, not text',
            file=label,
            where=row.where,
            column=column,
            hint=f"Map {key} to a column of plain text",
        )
    return str(value)


def _list(row: Row, mapping: ColumnMapping, key: str, label: str) -> list[Any]:
    column = mapping.columns[key]
    found, value = lookup(row.values, column)
    if not found:
        raise DatasetError(f'column "{column}" is missing', file=label, where=row.where, column=column,
                           hint=f'Every row needs "{column}" (mapped to {key})')
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            value = value.split()
    if not isinstance(value, list) or not value:
        raise DatasetError(
            f'column "{column}" must be a non-empty list',
            file=label,
            where=row.where,
            column=column,
            hint=f'Write {key} as a JSON list, e.g. ["EU", "rejects", "German"]',
        )
    return value


def _example_text_classification(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    example = {"sentence1": _text(row, mapping, "sentence1", label), "label": _text(row, mapping, "label", label)}
    if "sentence2" in mapping.columns:
        example["sentence2"] = _text(row, mapping, "sentence2", label)
    return example


def _example_token_classification(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    tokens = [str(t) for t in _list(row, mapping, "tokens", label)]
    tags = [str(t) for t in _list(row, mapping, "tags", label)]
    if len(tokens) != len(tags):
        raise DatasetError(
            f"has {len(tokens)} tokens but {len(tags)} tags",
            file=label,
            where=row.where,
            column=mapping.columns["tags"],
            hint="Give exactly one tag per token",
        )
    return {"tokens": tokens, "tags": tags}


def _example_question_answering(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    question = _text(row, mapping, "question", label)
    context = _text(row, mapping, "context", label)
    if "answers" in mapping.columns:
        column = mapping.columns["answers"]
        found, answers = lookup(row.values, column)
        if isinstance(answers, str):
            try:
                answers = orjson.loads(answers)
            except orjson.JSONDecodeError:
                answers = None
        if not found or not isinstance(answers, dict) or not isinstance(answers.get("text"), list):
            raise DatasetError(
                f'column "{column}" is not a SQuAD answers object',
                file=label,
                where=row.where,
                column=column,
                hint='Write answers as {"text": ["..."], "answer_start": [12]}',
            )
        texts = [str(t) for t in answers["text"]]
        starts = [int(s) for s in answers.get("answer_start", [])]
    else:
        texts = [_text(row, mapping, "answer_text", label)]
        raw_start = _text(row, mapping, "answer_start", label)
        try:
            starts = [int(float(raw_start))]
        except ValueError:
            raise DatasetError(
                f'column "{mapping.columns["answer_start"]}" is not a number ("{raw_start}")',
                file=label, where=row.where, hint="answer_start is the character offset of the answer in the context",
            ) from None
    for text, start in zip(texts, starts, strict=False):
        if context[start:start + len(text)] != text:
            where_found = context.find(text)
            hint = (f"It occurs at offset {where_found}; fix answer_start" if where_found >= 0
                    else "The answer must be a span of the context; fix the answer or the context")
            raise DatasetError(f'answer "{text[:60]}" is not in the context at offset {start}',
                               file=label, where=row.where, hint=hint)
    return {"question": question, "context": context, "answers": {"text": texts, "answer_start": starts}}


def _example_summarization(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    return {"document": _text(row, mapping, "document", label), "summary": _text(row, mapping, "summary", label)}


def _example_translation(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    return {"source": _text(row, mapping, "source", label), "target": _text(row, mapping, "target", label)}


def _example_text_generation(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    if "messages" in mapping.columns:
        column = mapping.columns["messages"]
        found, messages = lookup(row.values, column)
        if isinstance(messages, str):
            try:
                messages = orjson.loads(messages)
            except orjson.JSONDecodeError:
                messages = None
        valid = isinstance(messages, list) and messages and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
        )
        if not found or not valid:
            raise DatasetError(
                f'column "{column}" is not a list of chat messages',
                file=label,
                where=row.where,
                column=column,
                hint='Write messages as [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]',
            )
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}
    return {"prompt": _text(row, mapping, "prompt", label), "completion": _text(row, mapping, "completion", label)}


_EXAMPLE_BUILDERS = {
    Task.TEXT_CLASSIFICATION: _example_text_classification,
    Task.TOKEN_CLASSIFICATION: _example_token_classification,
    Task.QUESTION_ANSWERING: _example_question_answering,
    Task.SUMMARIZATION: _example_summarization,
    Task.TRANSLATION: _example_translation,
    Task.TEXT_GENERATION: _example_text_generation,
    Task.CHAT_COMPLETION: _example_text_generation,
}

# The tasks whose examples are only text columns checked by `_text`: the columnar fast path
# (`platforms.fastscan`) can check those; the others need their row-by-row builders.
_TEXT_KEYS = {
    Task.TEXT_CLASSIFICATION: ("sentence1", "sentence2", "label"),
    Task.SUMMARIZATION: ("document", "summary"),
    Task.TRANSLATION: ("source", "target"),
    Task.TEXT_GENERATION: ("prompt", "completion"),
    Task.CHAT_COMPLETION: ("prompt", "completion"),
}


def text_columns(mapping: ColumnMapping) -> list[str] | None:
    """The columns that `_text` would read for this mapping, or None when its builder reads more."""
    keys = _TEXT_KEYS.get(mapping.task)
    if keys is None or "messages" in mapping.columns:
        return None
    return [mapping.columns[key] for key in keys if key in mapping.columns]


def iter_examples(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024) -> Iterator[dict[str, Any]]:
    """Yield a file's examples keyed by the task's column keys, one at a time, or raise DatasetError."""
    label = name or path.name
    builder = _EXAMPLE_BUILDERS.get(mapping.task)
    if builder is None:
        raise DatasetError(f"{mapping.task} takes no dataset", hint="Use try, import or deploy with this task")
    for row in read_rows(path, label, max_bytes=max_bytes):
        yield builder(row, mapping, label)


def no_records(label: str) -> DatasetError:
    return DatasetError("holds no records", file=label, hint="Add at least one row under the header")


def load_examples(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024) -> list[dict[str, Any]]:
    """Read a file and return its examples keyed by the task's column keys, or raise DatasetError."""
    examples = list(iter_examples(path, mapping, name, max_bytes=max_bytes))
    if not examples:
        raise no_records(name or path.name)
    return examples

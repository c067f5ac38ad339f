"""Turning records into examples keyed by the task's column keys, one builder per task.

Each rejection names the file, the line and the column and says what to do: the message goes to
the user verbatim.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from platforms.datasets.errors import DatasetError
from platforms.datasets.mapping import ColumnMapping
from platforms.datasets.reading import Row, lookup, read_rows
from platforms.datasets.skipping import BadRows, RowPolicy
from platforms.tasks import Task

_BLANK_WORDS = ("nan", "null", "none")
_ABSENT = object()
MAX_LITERAL_CHARS = 100_000  # a cell parsed as a list or object; literal_eval's work grows with it


def parse_structured(value: Any) -> Any:
    """A cell that holds a list or an object written as text: JSON, or a Python literal
    (`"['25']"`, `"{'text': [...]}"`) as pandas and `datasets` exports write them. Python literals are
    read with `ast.literal_eval`, which builds only constants, never calls anything; any other text
    comes back unchanged."""
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if not stripped or stripped[0] not in "[{" or len(stripped) > MAX_LITERAL_CHARS:
        return value
    try:
        return orjson.loads(stripped)
    except orjson.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


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
        parsed = parse_structured(value)
        value = parsed if parsed is not value else value.split()
    if not isinstance(value, list) or not value:
        raise DatasetError(
            f'column "{column}" must be a non-empty list',
            file=label,
            where=row.where,
            column=column,
            hint=f'Write {key} as a JSON list, e.g. ["EU", "rejects", "German"]',
        )
    return value


def _single_label(row: Row, mapping: ColumnMapping, label: str) -> str:
    """One class per row; a one-item list written as text (`"['25']"`) is that item, a longer one is
    a multi-label row, which this task cannot learn."""
    value = _text(row, mapping, "label", label)
    parsed = parse_structured(value)
    if isinstance(parsed, list) and len(parsed) == 1 and not isinstance(parsed[0], (list, dict)):
        return str(parsed[0])
    if isinstance(parsed, list):
        column = mapping.columns["label"]
        raise DatasetError(f'column "{column}" holds a list of {len(parsed)} labels where one label is expected',
                           file=label, where=row.where, column=column,
                           hint="Give one label per row, or use the task text-classification-multilabel")
    return value


def _example_text_classification(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    example = {"sentence1": _text(row, mapping, "sentence1", label), "label": _single_label(row, mapping, label)}
    if "sentence2" in mapping.columns:
        example["sentence2"] = _text(row, mapping, "sentence2", label)
    return example


def _labels(row: Row, mapping: ColumnMapping, label: str) -> list[str]:
    """The labels of a multi-label row: a list (JSON, a Python literal, or in the record itself) or a
    comma-separated string (`4,27`), deduplicated in order; an empty list means none applies."""
    column = mapping.columns["label"]
    found, value = lookup(row.values, column)
    if not found:
        raise DatasetError(f'column "{column}" is missing', file=label, where=row.where, column=column,
                           hint=f'Every row needs "{column}" (mapped to label); fix the row or map another column')
    if is_blank(value):
        raise DatasetError(f'column "{column}" is empty', file=label, where=row.where, column=column,
                           hint="Give every row its labels, e.g. [\"sports\", \"politics\"] or sports,politics; "
                                "[] for a row no label applies to")
    value = parse_structured(value)
    if isinstance(value, str):
        value = value.split(",")
    elif not isinstance(value, list):
        value = [value]
    labels = [str(v).strip() for v in value]
    if any(isinstance(v, (list, dict)) or is_blank(v) for v in value) or not all(labels):
        raise DatasetError(f'column "{column}" holds an empty or nested label', file=label, where=row.where,
                           column=column, hint="Write each label as text, e.g. [\"sports\", \"politics\"]")
    return list(dict.fromkeys(labels))


def _example_multilabel(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    example: dict[str, Any] = {"sentence1": _text(row, mapping, "sentence1", label),
                               "labels": _labels(row, mapping, label)}
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


def _answers(row: Row, mapping: ColumnMapping, label: str) -> tuple[list[str], list[int] | None]:
    """The answer texts and, where the data gives them, their offsets (None: not given)."""
    if "answers" in mapping.columns:
        column = mapping.columns["answers"]
        found, answers = lookup(row.values, column)
        answers = parse_structured(answers)
        if not found or not isinstance(answers, dict) or not isinstance(answers.get("text"), list):
            raise DatasetError(
                f'column "{column}" is not a SQuAD answers object',
                file=label,
                where=row.where,
                column=column,
                hint='Write answers as {"text": ["..."], "answer_start": [12]} (answer_start may be left out)',
            )
        texts = [str(t) for t in answers["text"]]
        if any(is_blank(t) for t in texts):
            raise DatasetError(f'column "{column}" holds an empty answer', file=label, where=row.where, column=column,
                               hint="Give every answer its text, or remove the row")
        given = answers.get("answer_start")
        try:
            starts = [int(s) for s in given] if isinstance(given, list) and given else None
        except (TypeError, ValueError):
            raise DatasetError(f'column "{column}" has an answer_start that is not a number', file=label,
                               where=row.where, column=column,
                               hint="answer_start is the character offset of the answer in the context") from None
        return texts, starts
    texts = [_text(row, mapping, "answer_text", label)]
    raw_start = _text(row, mapping, "answer_start", label, required=False) if "answer_start" in mapping.columns else None
    if raw_start is None:
        return texts, None
    try:
        return texts, [int(float(raw_start))]
    except ValueError:
        raise DatasetError(
            f'column "{mapping.columns["answer_start"]}" is not a number ("{raw_start}")', file=label,
            where=row.where, column=mapping.columns["answer_start"],
            hint="answer_start is the character offset of the answer in the context",
        ) from None


def _locate(texts: list[str], context: str, row: Row, label: str) -> list[int]:
    """Training needs each answer's offset: found in the context when the text occurs exactly once."""
    starts = []
    for text in texts:
        first = context.find(text)
        if first < 0:
            raise DatasetError(f'answer "{text[:60]}" is not in the context', file=label, where=row.where,
                               hint="The answer must be a span of the context; fix the answer or the context")
        if context.find(text, first + 1) >= 0:
            raise DatasetError(f'answer "{text[:60]}" occurs more than once in the context, so its place is unknown',
                               file=label, where=row.where, hint="Give answer_start for this row")
        starts.append(first)
    return starts


def _question_answering(row: Row, mapping: ColumnMapping, label: str, *, training: bool) -> dict[str, Any]:
    question = _text(row, mapping, "question", label)
    context = _text(row, mapping, "context", label)
    texts, starts = _answers(row, mapping, label)
    if starts is None:
        starts = _locate(texts, context, row, label) if training else []
    for text, start in zip(texts, starts, strict=False):
        if context[start:start + len(text)] != text:
            where_found = context.find(text)
            hint = (f"It occurs at offset {where_found}; fix answer_start" if where_found >= 0
                    else "The answer must be a span of the context; fix the answer or the context")
            raise DatasetError(f'answer "{text[:60]}" is not in the context at offset {start}',
                               file=label, where=row.where, hint=hint)
    return {"question": question, "context": context, "answers": {"text": texts, "answer_start": starts}}


def _example_question_answering(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    return _question_answering(row, mapping, label, training=True)


def _evaluation_question_answering(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    """Scoring compares answer texts only, so offsets may be missing (as Azure's QA evaluation maps
    columns: context, question, answer text)."""
    return _question_answering(row, mapping, label, training=False)


def _example_summarization(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    return {"document": _text(row, mapping, "document", label), "summary": _text(row, mapping, "summary", label)}


def _example_translation(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    return {"source": _text(row, mapping, "source", label), "target": _text(row, mapping, "target", label)}


def _example_text_generation(row: Row, mapping: ColumnMapping, label: str) -> dict[str, Any]:
    if "messages" in mapping.columns:
        column = mapping.columns["messages"]
        found, messages = lookup(row.values, column)
        messages = parse_structured(messages)
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


# Where evaluation reads less than training does.
_EVALUATION_BUILDERS = {Task.QUESTION_ANSWERING: _evaluation_question_answering}
_EXAMPLE_BUILDERS = {
    Task.TEXT_CLASSIFICATION: _example_text_classification,
    Task.TEXT_CLASSIFICATION_MULTILABEL: _example_multilabel,
    Task.TOKEN_CLASSIFICATION: _example_token_classification,
    Task.QUESTION_ANSWERING: _example_question_answering,
    Task.SUMMARIZATION: _example_summarization,
    Task.TRANSLATION: _example_translation,
    Task.TEXT_GENERATION: _example_text_generation,
    Task.CHAT_COMPLETION: _example_text_generation,
}

# The tasks whose examples are only text columns checked by `_text`: the fast path
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
                  max_bytes: int = 100 * 1024 * 1024, training: bool = True,
                  bad: BadRows | None = None) -> Iterator[dict[str, Any]]:
    """Yield a file's examples keyed by the task's column keys, one at a time, or raise DatasetError.
    With `bad`, rows that read but make no example are counted there and left out instead."""
    label = name or path.name
    builder = (None if training else _EVALUATION_BUILDERS.get(mapping.task)) or _EXAMPLE_BUILDERS.get(mapping.task)
    if builder is None:
        raise DatasetError(f"{mapping.task} takes no dataset", hint="Use try, import or deploy with this task")
    for row in read_rows(path, label, max_bytes=max_bytes):
        try:
            example = builder(row, mapping, label)
        except DatasetError as exc:
            if bad is None:
                raise
            bad.add(exc)
            continue
        yield example


def no_records(label: str) -> DatasetError:
    return DatasetError("holds no records", file=label, hint="Add at least one row under the header")


def load_examples(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024, training: bool = True,
                  rows: RowPolicy | None = None) -> list[dict[str, Any]]:
    """Read a file and return its examples keyed by the task's column keys, or raise DatasetError.
    With a `rows` policy bad rows are all counted before the file is refused, or skipped if it says so."""
    label = name or path.name
    bad = BadRows() if rows is not None else None
    examples = list(iter_examples(path, mapping, name, max_bytes=max_bytes, training=training, bad=bad))
    if bad is not None and rows is not None:
        bad.check(len(examples), rows, label)
    if not examples:
        raise no_records(label)
    return examples

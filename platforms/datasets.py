"""Reading, mapping, validating and splitting user datasets.

Users bring JSONL, JSON, CSV or TSV files with their own column names. Everything here turns
such a file into a list of examples keyed by the task's column keys (`sentence1`, `label`, ...),
or raises a `DatasetError` that names the file, the line and the column and says what to do:
the message goes to the user verbatim, so it must never be a stack trace.

Files are read line by line (never whole, except for a whole-file JSON document), so a large
upload costs memory in proportion to the examples kept, not to the bytes read.
"""

from __future__ import annotations

import csv
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel

from platforms import fastscan
from platforms.errors import FmbotError
from platforms.tasks import TASKS, Task

Format = Literal["jsonl", "json", "csv", "tsv"]
MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_COLUMNS = 500  # columns a file may have: its names ride in form state and mapping selects
SUPPORTED = "JSONL, JSON, CSV or TSV"


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


@dataclass(slots=True)
class Row:
    """One record of a file and where it came from, so later checks can point at it.

    A plain slotted dataclass, not a pydantic model: one is built per row, and validating the
    values dict again (a copy) cost more than parsing the row's JSON."""

    where: str
    values: dict[str, Any]


# ---------------------------------------------------------------------------- reading


def sniff_format(path: Path, name: str | None = None) -> Format:
    """Tell the format from the extension, and JSON from JSON Lines by content.

    Many public datasets ship JSON Lines under a `.json` name, so a `{` start is only trusted as a
    single document when the first line alone does not parse.
    """
    label = name or path.name
    suffix = Path(label).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
        if not head:
            raise DatasetError("the file is empty", file=label, hint=f"Upload a {SUPPORTED} file with a header or one record per line")
        if head[:1] == b"[":
            return "json"
        if head[:1] == b"{":
            handle.seek(0)
            first = handle.readline(MAX_RECORD_BYTES)
            if len(first) == MAX_RECORD_BYTES and not first.endswith(b"\n"):
                return "jsonl"  # one over-long line: the line reader names it, not a whole-file parse
            first = first.strip().lstrip(b"\xef\xbb\xbf")
            try:
                orjson.loads(first)
                return "jsonl"
            except orjson.JSONDecodeError:
                return "json"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise DatasetError(
        f"cannot tell the format of this file (suffix {suffix or 'none'})",
        file=label,
        hint=f"Upload {SUPPORTED}; name it .jsonl, .json, .csv or .tsv",
    )


def _decode(raw: bytes, label: str, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
            file=label,
            where=where,
            hint="Save the file as UTF-8 and upload it again",
        ) from None


def _lines(path: Path, label: str) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        number = 0
        while True:
            raw = handle.readline(MAX_RECORD_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                raise DatasetError(
                    f"is longer than {MAX_RECORD_BYTES // (1024 * 1024)} MB",
                    file=label,
                    where=f"line {number}",
                    hint="Split very long records, or check that the file has one record per line",
                )
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            yield number, raw


def _jsonl_rows(path: Path, label: str) -> Iterator[Row]:
    for number, raw in _lines(path, label):
        if raw.isspace():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            _decode(raw, label, f"line {number}")
            raise DatasetError(
                f"is not valid JSON ({str(exc).split(':')[0]})",
                file=label,
                where=f"line {number}",
                hint="Each line of a JSON Lines file must be one complete JSON object",
            ) from None
        if not isinstance(value, dict):
            raise DatasetError(
                f"holds a JSON {type(value).__name__}, not an object",
                file=label,
                where=f"line {number}",
                hint='Write one object per line, e.g. {"text": "...", "label": "..."}',
            )
        yield Row(where=f"line {number}", values=value)


def _squad_rows(document: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Flatten SQuAD's nested `data[].paragraphs[].qas[]` into one record per question."""
    data = document.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "paragraphs" not in data[0]:
        return None
    records = []
    for article in data:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                records.append({
                    "id": qa.get("id"),
                    "title": article.get("title"),
                    "question": qa.get("question"),
                    "context": paragraph.get("context"),
                    "answers": {
                        "text": [a.get("text") for a in answers],
                        "answer_start": [a.get("answer_start") for a in answers],
                    },
                })
    return records


def _json_rows(path: Path, label: str, max_bytes: int) -> Iterator[Row]:
    if path.stat().st_size > max_bytes:
        raise DatasetError(
            f"is a single JSON document larger than {max_bytes // (1024 * 1024)} MB",
            file=label,
            hint="Convert it to JSON Lines (one object per line), which is read as a stream",
        )
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        text = _decode(raw, label, "the file")
        line = text.count("\n", 0, exc.pos) + 1
        raise DatasetError(
            f"is not valid JSON ({str(exc).split(':')[0]})",
            file=label,
            where=f"line {line}",
            hint="Fix the JSON, or upload JSON Lines with one object per line",
        ) from None
    if isinstance(document, dict):
        records = _squad_rows(document)
        if records is None:
            records = document.get("data") if isinstance(document.get("data"), list) else [document]
    elif isinstance(document, list):
        records = document
    else:
        raise DatasetError(
            f"holds a JSON {type(document).__name__}", file=label, hint="Upload a list of objects or JSON Lines"
        )
    for index, value in enumerate(records, start=1):
        if not isinstance(value, dict):
            raise DatasetError(
                f"is a JSON {type(value).__name__}, not an object",
                file=label,
                where=f"item {index}",
                hint="Each item of the list must be an object with your columns",
            )
        yield Row(where=f"item {index}", values=value)


def _delimited_rows(path: Path, label: str, delimiter: str) -> Iterator[Row]:
    """CSV quotes fields; TSV is read with quoting off, since public TSVs hold unpaired quotes.

    Only the number of the last line read is kept (a row ends on it), so memory stays flat."""
    last = [0]

    def text_lines() -> Iterator[str]:
        for number, raw in _lines(path, label):
            last[0] = number
            yield _decode(raw, label, f"line {number}")

    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(text_lines(), delimiter=delimiter, quoting=quoting, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DatasetError("the file is empty", file=label, hint="The first line must name the columns") from None
    except csv.Error as exc:
        raise _unreadable(exc, label, delimiter, last[0]) from None
    header = [name.strip() for name in header]
    if not any(header):
        raise DatasetError("the first line is empty", file=label, where="line 1", hint="The first line must name the columns")
    if len(header) > MAX_COLUMNS:
        raise DatasetError(f"names {len(header):,} columns; fmbot reads at most {MAX_COLUMNS}", file=label,
                           where="line 1", hint="Keep only the columns the task needs")
    duplicates = sorted(name for name, count in Counter(header).items() if count > 1)
    if duplicates:
        raise DatasetError(
            f'names column "{duplicates[0]}" twice', file=label, where="line 1", hint="Give every column a distinct name"
        )
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _unreadable(exc, label, delimiter, last[0]) from None
        where = f"line {last[0]}"
        if not fields or fields == [""]:
            continue
        if len(fields) != len(header):
            raise DatasetError(
                f"has {len(fields)} field{'s' if len(fields) != 1 else ''} but the header has {len(header)}",
                file=label,
                where=where,
                hint=f"Every row needs one value per column ({', '.join(header)}); quote values that contain the delimiter",
            )
        yield Row(where=where, values=dict(zip(header, fields, strict=True)))


def _checked_format(path: Path, label: str, max_bytes: int) -> Format:
    """The file's format, once it is known to exist, be non-empty and be within the size limit."""
    if not path.exists():
        raise DatasetError("does not exist", file=str(path), hint="Check the path")
    size = path.stat().st_size
    if size > max_bytes:
        raise DatasetError(
            f"is {size / (1024 * 1024):.1f} MB; the limit is {max_bytes // (1024 * 1024)} MB",
            file=label,
            hint="Upload a smaller file, or register it as an Azure ML data asset and give its name",
        )
    if size == 0:
        raise DatasetError("the file is empty", file=label, hint=f"Upload a {SUPPORTED} file with at least one record")
    return sniff_format(path, label)


def _unreadable(exc: csv.Error, label: str, delimiter: str, line: int) -> DatasetError:
    return DatasetError(
        f"cannot be read as {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})",
        file=label,
        where=f"line {line or 1}",
        hint="Check the quoting on that line",
    )


def read_rows(path: Path, name: str | None = None, *, max_bytes: int = 100 * 1024 * 1024) -> Iterator[Row]:
    """Yield the records of a dataset file; `name` is how the user knows the file."""
    label = name or path.name
    fmt = _checked_format(path, label, max_bytes)
    if fmt == "jsonl":
        return _jsonl_rows(path, label)
    if fmt == "json":
        return _json_rows(path, label, max_bytes)
    return _delimited_rows(path, label, "," if fmt == "csv" else "\t")


def read_columns(path: Path, name: str | None = None, *, sample: int = 50) -> list[str]:
    """The column names seen in the first records, in first-seen order (for mapping selects).

    At most MAX_COLUMNS: the names travel in the form's state through every step, so a file of a
    million distinct keys is refused here, before it costs memory, Redis or Slack anything."""
    seen: dict[str, None] = {}
    for index, row in enumerate(read_rows(path, name)):
        if len(row.values) > MAX_COLUMNS:
            raise DatasetError(f"has {len(row.values):,} keys; fmbot reads at most {MAX_COLUMNS} columns",
                               file=name or path.name, where=row.where, hint="Keep only the columns the task needs")
        for key in flatten_keys(row.values):
            seen.setdefault(key, None)
        if len(seen) > MAX_COLUMNS:
            raise DatasetError(f"has more than {MAX_COLUMNS} distinct columns in its first {index + 1} records",
                               file=name or path.name, where=row.where,
                               hint="Give every record the same few columns the task needs")
        if index + 1 >= sample:
            break
    return list(seen)


def flatten_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    """Column names, with one level of nesting shown as `translation.en`."""
    keys = []
    for key, value in values.items():
        keys.append(prefix + key)
        if isinstance(value, dict) and not prefix and all(isinstance(v, str) for v in value.values()):
            keys.extend(f"{key}.{inner}" for inner in value)
    return keys


def lookup(values: dict[str, Any], column: str) -> tuple[bool, Any]:
    """Find a column, reading `a.b` as a nested key when no column has that literal name."""
    if column in values:
        return True, values[column]
    head, _, rest = column.partition(".")
    if rest and isinstance(values.get(head), dict):
        return lookup(values[head], rest)
    return False, None


# ---------------------------------------------------------------------------- mapping


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


# ---------------------------------------------------------------------------- validation


_BLANK_WORDS = ("nan", "null", "none")
_ABSENT = object()


def _is_blank(value: Any) -> bool:
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
    if _is_blank(value):
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


def _text_columns(mapping: ColumnMapping) -> list[str] | None:
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


def _no_records(label: str) -> DatasetError:
    return DatasetError("holds no records", file=label, hint="Add at least one row under the header")


def load_examples(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024) -> list[dict[str, Any]]:
    """Read a file and return its examples keyed by the task's column keys, or raise DatasetError."""
    examples = list(iter_examples(path, mapping, name, max_bytes=max_bytes))
    if not examples:
        raise _no_records(name or path.name)
    return examples


class DatasetSummary(BaseModel):
    """What a validated file holds, counted without keeping its rows."""

    rows: int
    labels: dict[str, int] = {}


def validate_file(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024) -> DatasetSummary:
    """Check every row of a file as `load_examples` would, keeping none, so memory stays flat in the
    file size; this is what runs before a job is recorded, on files of any size up to `max_bytes`.

    JSON Lines, CSV and TSV files of text tasks go through the columnar fast path first; it accepts
    exactly what the row reader accepts, and any file it cannot prove good is read again row by row,
    so that a rejection still names the file, line and column."""
    label = name or path.name
    classify = mapping.task == Task.TEXT_CLASSIFICATION
    fmt = _checked_format(path, label, max_bytes)
    columns = _text_columns(mapping)
    scanned = None
    if columns is not None and fmt != "json":
        scanned = fastscan.scan(path, fmt, columns, mapping.columns["label"] if classify else None, _is_blank)
    if scanned is not None:
        rows, labels = scanned.rows, scanned.labels
    else:
        rows, labels = _count_examples(path, mapping, label, max_bytes, classify)
    if not rows:
        raise _no_records(label)
    if classify:
        _require_classes(sorted(labels), label)
    return DatasetSummary(rows=rows, labels=dict(labels))


def _count_examples(path: Path, mapping: ColumnMapping, label: str, max_bytes: int,
                    classify: bool) -> tuple[int, Counter[str]]:
    rows = 0
    labels: Counter[str] = Counter()
    for example in iter_examples(path, mapping, label, max_bytes=max_bytes):
        rows += 1
        if classify:
            labels[example["label"]] += 1
    return rows, labels


def check_labels(examples: list[dict[str, Any]], label: str) -> list[str]:
    """The sorted class names; a classifier needs at least two of them."""
    return _require_classes(sorted({example["label"] for example in examples}), label)


def _require_classes(classes: list[str], label: str) -> list[str]:
    if len(classes) < 2:
        raise DatasetError(
            f'the label column has only one class ("{classes[0]}")',
            file=label,
            hint="A classifier needs examples of at least two classes",
        )
    return classes


# ---------------------------------------------------------------------------- splitting


class SplitPlan(BaseModel):
    """Fractions of the training file set aside when no separate file is given."""

    validation: float = 0.1
    test: float = 0.1

    def check(self) -> None:
        for name, value in (("validation", self.validation), ("test", self.test)):
            if not 0 <= value < 1:
                raise DatasetError(
                    f"the {name} split is {value * 100:g}%", where="split", hint="Give a percentage from 0 to 99"
                )
        if self.validation + self.test >= 1:
            raise DatasetError(
                f"validation and test splits sum to {(self.validation + self.test) * 100:g}%",
                where="split",
                hint="Together they must stay under 100% so rows are left for training, e.g. 10% and 10%",
            )


def split_examples(examples: list[dict[str, Any]], fractions: list[float], *, seed: int = 42,
                   stratify_key: str | None = None) -> list[list[dict[str, Any]]]:
    """Split off parts of `examples` (one per fraction) and return [rest, *parts].

    Splits are seeded so the same file splits the same way every time, and stratified by
    `stratify_key` when every class has enough rows, so a small test split still sees every class.
    """
    rng = random.Random(seed)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for example in examples:
        groups[example.get(stratify_key) if stratify_key else None].append(example)
    stratify = stratify_key is not None and all(len(g) >= len(fractions) + 1 for g in groups.values())
    if not stratify:
        groups = {None: list(examples)}
    parts: list[list[dict[str, Any]]] = [[] for _ in range(len(fractions) + 1)]
    for key in sorted(groups, key=str):
        group = list(groups[key])
        rng.shuffle(group)
        start = 0
        for index, fraction in enumerate(fractions, start=1):
            count = round(len(group) * fraction)
            if fraction > 0 and count == 0 and len(group) - start > 1:
                count = 1
            parts[index].extend(group[start:start + count])
            start += count
        parts[0].extend(group[start:])
    for part in parts:
        rng.shuffle(part)
    return parts

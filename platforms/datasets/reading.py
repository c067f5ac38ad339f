"""Reading a dataset file as records: format sniffing, JSON Lines, JSON (SQuAD too), CSV and TSV.

Files are read line by line (never whole, except for a whole-file JSON document), so a large
upload costs memory in proportion to the records kept, not to the bytes read.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from platforms.datasets.errors import DatasetError

Format = Literal["jsonl", "json", "csv", "tsv"]
MAX_RECORD_BYTES = 8 * 1024 * 1024
MAX_COLUMNS = 500  # columns a file may have: its names ride in form state and mapping selects
SUPPORTED = "JSONL, JSON, CSV or TSV"


@dataclass(slots=True)
class Row:
    """One record of a file and where it came from, so later checks can point at it.

    A plain slotted dataclass, not a pydantic model: one is built per row, and validating the
    values dict again (a copy) cost more than parsing the row's JSON."""

    where: str
    values: dict[str, Any]


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


def checked_format(path: Path, label: str, max_bytes: int) -> Format:
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
    fmt = checked_format(path, label, max_bytes)
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

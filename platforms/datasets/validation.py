"""Checking a whole file before a job is recorded, keeping none of its rows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from platforms import fastscan
from platforms.datasets.errors import DatasetError
from platforms.datasets.examples import is_blank, iter_examples, no_records, text_columns
from platforms.datasets.mapping import ColumnMapping
from platforms.datasets.reading import checked_format
from platforms.datasets.skipping import BadRow, BadRows, RowPolicy
from platforms.tasks import Task


class DatasetSummary(BaseModel):
    """What a validated file holds, counted without keeping its rows: the good rows, the label
    counts, and the bad rows skipped (how many, the first few)."""

    rows: int
    labels: dict[str, int] = {}
    skipped: int = 0
    bad_rows: list[BadRow] = []


def validate_file(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                  max_bytes: int = 100 * 1024 * 1024, training: bool = True,
                  rows: RowPolicy = RowPolicy()) -> DatasetSummary:
    """Check every row of a file as `load_examples` would, keeping none, so memory stays flat in the
    file size; this is what runs before a job is recorded, on files of any size up to `max_bytes`.

    JSON Lines, CSV and TSV files of text tasks go through the fast path (`platforms.fastscan`)
    first; it accepts exactly what the row reader accepts, and any file it cannot prove good is read
    again row by row, so that a rejection still names the file, line and column."""
    label = name or path.name
    classify = mapping.task == Task.TEXT_CLASSIFICATION
    fmt = checked_format(path, label, max_bytes)
    columns = text_columns(mapping)
    scanned = None
    if columns is not None and fmt != "json":
        scanned = fastscan.scan(path, fmt, columns, mapping.columns["label"] if classify else None, is_blank)
    if scanned is not None and classify and any(_looks_like_list(value) for value in scanned.labels):
        scanned = None  # labels written as lists: the row reader unwraps or refuses them
    bad = BadRows()
    if scanned is not None:
        good, labels = scanned.rows, scanned.labels
    else:
        good, labels = _count_examples(path, mapping, label, max_bytes, training, bad)
    bad.check(good, rows, label)
    if not good:
        raise no_records(label)
    if classify:
        _require_classes(sorted(labels), label)
    return DatasetSummary(rows=good, labels=dict(labels), skipped=bad.count, bad_rows=bad.first)


def _looks_like_list(value: str) -> bool:
    return value.lstrip().startswith("[")


def _count_examples(path: Path, mapping: ColumnMapping, label: str, max_bytes: int, training: bool,
                    bad: BadRows) -> tuple[int, Counter[str]]:
    """Good rows and label counts (a multi-label row counts once per label)."""
    rows = 0
    labels: Counter[str] = Counter()
    for example in iter_examples(path, mapping, label, max_bytes=max_bytes, training=training, bad=bad):
        rows += 1
        if "label" in example:
            labels[example["label"]] += 1
        labels.update(example.get("labels", ()))
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

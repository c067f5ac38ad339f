"""Checking a dataset before any job is recorded for it."""

from __future__ import annotations

from pathlib import Path

from platforms.base import DataRef
from platforms.datasets import ColumnMapping, check_labels, load_examples
from platforms.tasks import Task


def check_data(ref: DataRef, mapping: ColumnMapping, *, max_bytes: int) -> int:
    """Read and validate a local dataset file; returns its row count. Registered assets are read remotely."""
    if ref.path.startswith("azureml:"):
        return 0
    examples = load_examples(Path(ref.path), mapping, ref.name, max_bytes=max_bytes)
    if mapping.task == Task.TEXT_CLASSIFICATION:
        check_labels(examples, ref.name)
    return len(examples)

"""Checking a dataset before any job is recorded for it."""

from __future__ import annotations

from pathlib import Path

from platforms.base import DataRef
from platforms.datasets import ColumnMapping, validate_file


def check_data(ref: DataRef, mapping: ColumnMapping, *, max_bytes: int) -> int:
    """Read and validate a local dataset file as a stream (no row is kept); returns its row count.
    Registered assets are read remotely."""
    if ref.path.startswith("azureml:"):
        return 0
    return validate_file(Path(ref.path), mapping, ref.name, max_bytes=max_bytes).rows

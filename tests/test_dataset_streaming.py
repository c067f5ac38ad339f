"""Streaming validation (`validate_file`, what `check_data` runs before a job is recorded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handlers.data import check_data
from platforms.base import DataRef
from platforms.datasets import ColumnMapping, DatasetError, iter_examples, load_examples, validate_file
from platforms.tasks import Task

MAPPING = ColumnMapping.build({"sentence1": "review", "label": "sentiment"}, Task.TEXT_CLASSIFICATION)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_counts_rows_and_labels_like_load_examples(tmp_path: Path):
    rows = [{"review": f"text {i}", "sentiment": "pos" if i % 3 else "neg"} for i in range(30)]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    summary = validate_file(path, MAPPING)
    assert summary.rows == 30 and summary.labels == {"pos": 20, "neg": 10}
    assert list(iter_examples(path, MAPPING)) == load_examples(path, MAPPING)
    assert check_data(DataRef(path=str(path), name="train.jsonl"), MAPPING, max_bytes=1 << 20).rows == 30


def test_csv_rows_are_counted_and_a_bad_row_is_named(tmp_path: Path):
    path = tmp_path / "train.csv"
    path.write_text('review,sentiment\n"good, really",pos\nbad,neg\n"multi\nline",pos\n')
    assert validate_file(path, MAPPING).rows == 3
    path.write_text("review,sentiment\ngood,pos\n  ,neg\n")
    with pytest.raises(DatasetError, match=r'train.csv line 3: column "review" is empty'):
        validate_file(path, MAPPING)


def test_the_error_names_the_line_and_one_class_is_refused(tmp_path: Path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"review": "a", "sentiment": "x"}, {"review": "b"}])
    with pytest.raises(DatasetError, match=r'upload.jsonl line 2: column "sentiment" is missing'):
        validate_file(path, MAPPING, "upload.jsonl")
    path = write_jsonl(tmp_path / "one.jsonl", [{"review": "a", "sentiment": "x"}, {"review": "b", "sentiment": "x"}])
    with pytest.raises(DatasetError, match=r'only one class \("x"\)'):
        check_data(DataRef(path=str(path), name="one.jsonl"), MAPPING, max_bytes=1 << 20)


def test_blank_markers_are_found_in_short_values_only(tmp_path: Path):
    path = write_jsonl(tmp_path / "t.jsonl", [{"review": " None ", "sentiment": "x"}])
    with pytest.raises(DatasetError, match="line 1: column \"review\" is empty"):
        validate_file(path, MAPPING)
    path = write_jsonl(tmp_path / "t.jsonl", [{"review": "None of it", "sentiment": "x"}, {"review": "n", "sentiment": "y"}])
    assert validate_file(path, MAPPING).rows == 2


def test_an_empty_file_of_records_is_refused(tmp_path: Path):
    path = tmp_path / "empty.csv"
    path.write_text("review,sentiment\n")
    with pytest.raises(DatasetError, match="holds no records"):
        validate_file(path, MAPPING)

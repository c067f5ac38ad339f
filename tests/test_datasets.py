"""Dataset reading, column mapping, splitting and the exact wording of every error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from platforms.datasets import (
    ColumnMapping,
    DatasetError,
    SplitPlan,
    check_labels,
    guess_mapping,
    load_examples,
    read_columns,
    read_rows,
    sniff_format,
    split_examples,
)
from platforms.tasks import Task
from tests.helpers import DATA

TC = Task.TEXT_CLASSIFICATION


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def mapping(text: str, task: Task = TC) -> ColumnMapping:
    return ColumnMapping.parse(text, task)


# ---------------------------------------------------------------------------- formats


def test_jsonl_real_file():
    examples = load_examples(DATA / "sst2_small_validation.jsonl", mapping("sentence1=input_string,label=label_string"))
    assert len(examples) == 87
    assert set(examples[0]) == {"sentence1", "label"}
    assert {e["label"] for e in examples} == {"POSITIVE", "NEGATIVE"}


def test_csv_with_quoted_fields_and_pairs():
    examples = load_examples(DATA / "mrpc_dev.csv", mapping("sentence1=sentence1,sentence2=sentence2,label=label"))
    assert len(examples) == 6
    assert examples[0]["sentence2"].startswith('" The foodservice pie business')
    assert examples[1]["label"] == "not_equivalent"


def test_tsv_with_crlf_and_stray_quotes():
    examples = load_examples(DATA / "mrpc_train.tsv", mapping("sentence1=#1 String,sentence2=#2 String,label=Quality"))
    assert len(examples) == 6
    assert not any(e["sentence2"].endswith("\r") for e in examples)
    assert {e["label"] for e in examples} == {"0", "1"}


def test_json_array_and_json_lines_told_apart_by_content(tmp_path):
    rows = [{"text": "good", "label": "pos"}, {"text": "bad", "label": "neg"}]
    array = write(tmp_path, "data.json", json.dumps(rows, indent=2))
    lines = write(tmp_path, "lines.json", "\n".join(json.dumps(r) for r in rows))
    document = write(tmp_path, "doc.json", json.dumps({"data": rows}, indent=1))
    assert sniff_format(array) == "json" and sniff_format(lines) == "jsonl" and sniff_format(document) == "json"
    for path in (array, lines, document):
        assert [e["label"] for e in load_examples(path, mapping("sentence1=text,label=label"))] == ["pos", "neg"]


def test_squad_nested_json_is_flattened():
    rows = list(read_rows(DATA / "squad_dev_v2.json"))
    assert len(rows) == 14
    assert {"question", "context", "answers"} <= set(rows[0].values)


def test_nested_column_paths():
    examples = load_examples(DATA / "wmt_en_ro_train.json",
                             mapping("source=translation.en,target=translation.ro", Task.TRANSLATION))
    assert len(examples) == 11 and examples[0]["source"] and examples[0]["target"]
    assert "translation.en" in read_columns(DATA / "wmt_en_ro_train.json")


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path, "bom.csv", b"\xef\xbb\xbftext,label\nhi,a\nho,b\n")
    assert read_columns(path) == ["text", "label"]


# ---------------------------------------------------------------------------- mapping


def test_mapping_parse_and_text():
    parsed = mapping("sentence1=review, label=stars")
    assert parsed.columns == {"sentence1": "review", "label": "stars"}
    assert parsed.text() == "sentence1=review,label=stars"


@pytest.mark.parametrize(("text", "message"), [
    ("sentence1=review", 'column mapping: no column is mapped to "label". Add label=<your column>'),
    ("sentence1=review,label=stars,colour=x", 'column mapping: "colour" is not a column key of text-classification. '
                                              "Keys for text-classification: sentence1, label, sentence2"),
    ("sentence1", 'column mapping: "sentence1" is not KEY=COLUMN. Write e.g. sentence1=sentence1,label=label'),
])
def test_mapping_errors(text, message):
    with pytest.raises(DatasetError) as caught:
        mapping(text)
    assert str(caught.value).startswith(message)


def test_mapping_alternatives_for_question_answering():
    assert mapping("question=q,context=c,answers=a", Task.QUESTION_ANSWERING)
    assert mapping("question=q,context=c,answer_text=t,answer_start=s", Task.QUESTION_ANSWERING)
    assert mapping("question=q,context=c,answer_text=t", Task.QUESTION_ANSWERING)  # answer_start is optional
    with pytest.raises(DatasetError, match="needs answers or answer_text mapped"):
        mapping("question=q,context=c", Task.QUESTION_ANSWERING)


def test_guess_mapping_from_common_names():
    assert guess_mapping(["input_string", "label_string", "label"], TC) == {"sentence1": "input_string",
                                                                         "label": "label"}
    assert guess_mapping(["#1 String", "#2 String", "Quality"], TC) == {
        "sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"}


# ---------------------------------------------------------------------------- errors with file, line, column


@pytest.mark.parametrize(("name", "content", "message"), [
    ("train.jsonl", "", "train.jsonl: the file is empty"),
    ("train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"\n', "train.jsonl line 2: is not valid JSON"),
    ("train.jsonl", '{"text": "a", "label": "x"}\n[1, 2]\n', "train.jsonl line 2: holds a JSON list, not an object"),
    ("train.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"label": "x"}\n',
     'train.jsonl line 3: column "text" is missing. Every row needs "text" (mapped to sentence1)'),
    ("train.jsonl", '{"text": "a", "label": "x"}\n{"text": "  ", "label": "y"}\n',
     'train.jsonl line 2: column "text" is empty'),
    ("train.jsonl", '{"text": "a", "label": NaN}\n', "train.jsonl line 1: is not valid JSON"),
    ("train.jsonl", '{"text": "a", "label": "nan"}\n', 'train.jsonl line 1: column "label" is empty'),
    ("train.csv", "text,label\na,x\nb,y,z\n", "train.csv line 3: has 3 fields but the header has 2"),
    ("train.csv", "text,text\na,b\n", 'train.csv line 1: names column "text" twice'),
    ("train.tsv", "text\tlabel\n", "train.tsv: holds no records"),
    ("train.txt", "text label\n", "train.txt: cannot tell the format of this file (suffix .txt)"),
])
def test_errors_name_file_line_and_column(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(DatasetError) as caught:
        load_examples(path, mapping("sentence1=text,label=label"))
    assert str(caught.value).startswith(message), str(caught.value)


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, "train.csv", b"text,label\nok,a\ncaf\xe9,b\n")
    with pytest.raises(DatasetError) as caught:
        load_examples(path, mapping("sentence1=text,label=label"))
    assert str(caught.value) == ("train.csv line 3: is not UTF-8 text (byte 0xe9 at column 4). "
                                 "Save the file as UTF-8 and upload it again")


def test_size_limit(tmp_path):
    path = write(tmp_path, "big.jsonl", '{"text": "a", "label": "x"}\n' * 100)
    with pytest.raises(DatasetError, match=r"big.jsonl: is 0.0 MB; the limit is 0 MB"):
        load_examples(path, mapping("sentence1=text,label=label"), max_bytes=1000)


def test_one_class_label_column():
    with pytest.raises(DatasetError, match='the label column has only one class \\("pos"\\)'):
        check_labels([{"label": "pos"}, {"label": "pos"}], "train.csv")


def test_token_and_tag_lengths_must_match(tmp_path):
    path = write(tmp_path, "ner.jsonl", '{"words": ["EU", "rejects"], "ner": ["B-ORG"]}\n')
    with pytest.raises(DatasetError, match="ner.jsonl line 1: has 2 tokens but 1 tags. Give exactly one tag per token"):
        load_examples(path, mapping("tokens=words,tags=ner", Task.TOKEN_CLASSIFICATION))


def test_qa_answer_must_be_in_context(tmp_path):
    row = {"question": "Who?", "context": "Ada wrote it.", "answers": {"text": ["Ada"], "answer_start": [3]}}
    path = write(tmp_path, "qa.jsonl", json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match='qa.jsonl line 1: answer "Ada" is not in the context at offset 3. '
                                           "It occurs at offset 0; fix answer_start"):
        load_examples(path, mapping("question=question,context=context,answers=answers", Task.QUESTION_ANSWERING))


# ---------------------------------------------------------------------------- split


def test_split_is_seeded_and_stratified():
    examples = [{"id": i, "label": "a" if i % 4 else "b"} for i in range(100)]
    train, validation, test = split_examples(examples, [0.1, 0.2], seed=1, stratify_key="label")
    assert (len(train), len(validation), len(test)) == (70, 10, 20)
    assert Counter(e["label"] for e in test) == {"a": 15, "b": 5}
    assert {e["id"] for e in train} | {e["id"] for e in validation} | {e["id"] for e in test} == set(range(100))
    again = split_examples(examples, [0.1, 0.2], seed=1, stratify_key="label")
    assert [e["id"] for e in again[2]] == [e["id"] for e in test]


def test_split_falls_back_when_a_class_is_too_small():
    examples = [{"label": "a"}] * 10 + [{"label": "b"}]
    train, test = split_examples(examples, [0.2], stratify_key="label")
    assert len(train) + len(test) == 11 and len(test) == 2


@pytest.mark.parametrize(("validation", "test", "message"), [
    (0.6, 0.5, "split: validation and test splits sum to 110%"),
    (-0.1, 0.1, "split: the validation split is -10%"),
    (0.1, 1.0, "split: the test split is 100%"),
])
def test_split_plan_errors(validation, test, message):
    with pytest.raises(DatasetError) as caught:
        SplitPlan(validation=validation, test=test).check()
    assert str(caught.value).startswith(message)

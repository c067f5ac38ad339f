"""The columnar fast path of `validate_file` (platforms.fastscan) against the row-by-row reader.

The row reader defines a good file; the fast path may only agree with it. Every case runs
`validate_file` twice, as is and with the fast path switched off, and the outcomes (row count and
label counts, or the exact error message) must be equal. Each case also says whether the fast path
proved the file itself or handed it to the row reader, so that clean files are seen to take the
fast path and odd ones to leave it.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from platforms import fastscan, linescan
from platforms.datasets import ColumnMapping, DatasetError, reading, validate_file
from platforms.tasks import Task
from tests.helpers import DATA

TC = Task.TEXT_CLASSIFICATION
Outcome = tuple[str, object, object]


def outcome(path: Path, mapping: ColumnMapping) -> Outcome:
    try:
        summary = validate_file(path, mapping)
    except DatasetError as error:
        return ("error", str(error), None)
    return ("ok", summary.rows, list(summary.labels.items()))


@pytest.fixture
def both(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, ColumnMapping], tuple[Outcome, bool]]:
    """Compare the two paths on a file; return the shared outcome and whether the fast path proved it."""
    real = fastscan.scan

    def run(path: Path, mapping: ColumnMapping) -> tuple[Outcome, bool]:
        answers = []

        def spy(*args):
            answers.append(real(*args))
            return answers[-1]

        monkeypatch.setattr(fastscan, "scan", spy)
        fast = outcome(path, mapping)
        monkeypatch.setattr(fastscan, "scan", lambda *args: None)
        exact = outcome(path, mapping)
        monkeypatch.setattr(fastscan, "scan", real)
        assert fast == exact
        return exact, bool(answers) and answers[0] is not None

    return run


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def lines(*rows: dict | str) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


TEXT = ColumnMapping.build({"sentence1": "text", "label": "label"}, TC)
GOOD = [{"text": "a fine film", "label": "pos"}, {"text": "dull", "label": "neg"}, {"text": "so-so", "label": "pos"}]


# ---------------------------------------------------------------------------- shared datasets


@pytest.mark.parametrize(("name", "task", "columns", "proved"), [
    ("sst2_small_validation.jsonl", TC, {"sentence1": "input_string", "label": "label_string"}, True),
    ("sst2_small_validation.jsonl", TC, {"sentence1": "input_string", "label": "label"}, True),
    ("mrpc_dev.csv", TC, {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"}, True),
    ("mrpc_train.tsv", TC, {"sentence1": "#1 String", "sentence2": "#2 String", "label": "Quality"}, True),
    ("xsum_sample.json", Task.SUMMARIZATION, {"document": "document", "summary": "summary"}, True),
    ("wmt_en_ro_train.json", Task.TRANSLATION, {"source": "translation.en", "target": "translation.ro"}, True),
    ("sft_chat.jsonl", Task.TEXT_GENERATION, {"messages": "messages"}, False),
])
def test_shared_datasets(both, name, task, columns, proved):
    result, fast = both(DATA / name, ColumnMapping.build(columns, task))
    assert result[0] == "ok" and fast == proved


def test_labels_are_counted_in_first_seen_order(both):
    result, fast = both(DATA / "sst2_small_validation.jsonl",
                        ColumnMapping.build({"sentence1": "input_string", "label": "label"}, TC))
    assert fast and result[1] == 87 and [label for label, _ in result[2]] == ["1", "0"]


# ---------------------------------------------------------------------------- JSON Lines

NESTED = {"text": "ok", "label": "neg", "meta": {"tags": ["a", {"b": [1, 2.5, None]}], "n": -3}}


def nested(depth: int) -> str:
    """A record whose own object and `depth` - 1 lists make `depth` levels."""
    return '{"text": "b", "label": "y", "deep": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


JSONL_CASES = [
    # name, content, proved
    ("plain", lines(*GOOD), True),
    ("whole-number labels", lines({"text": "a", "label": 1}, {"text": "b", "label": 0}), True),
    ("whole-number text", lines({"text": 5, "label": "x"}, {"text": 6, "label": "y"}), True),
    ("byte order mark", "\ufeff" + lines(*GOOD), True),
    ("CRLF", lines(*GOOD).replace("\n", "\r\n"), True),
    ("no final newline", lines(*GOOD).rstrip("\n"), True),
    ("empty lines", lines(GOOD[0], "", GOOD[1], "", "") + "\r\n", True),
    ("NaN and Infinity inside text", lines({"text": "NaN is not Infinity War", "label": "x"},
                                           {"text": "x", "label": "y", "note": "Information"}), True),
    ("NaN after a colon inside text", lines({"text": "score: NaN", "label": "x"}, GOOD[1]), True),
    ("nested unmapped values", lines(NESTED, *GOOD), True),
    ("unicode text", lines({"text": "caf\u00e9 \u00a0na\u00efve \u4e2d\u6587\u3002", "label": "x"}, GOOD[1]), True),
    ("escaped key", '{"te\\u0078t": "a", "label": "x"}\n{"text": "b", "label": "y"}\n', True),
    ("long text starting with a blank word", lines({"text": "None of it", "label": "x"}, GOOD[1]), True),
    ("labels with spaces", lines({"text": "a", "label": " pos"}, {"text": "b", "label": "pos"}), True),
    ("one class", lines({"text": "a", "label": "x"}, {"text": "b", "label": "x"}), True),
    ("nesting at orjson's limit", lines(GOOD[0], nested(1024)), True),
    ("blank text", lines(GOOD[0], {"text": "  ", "label": "y"}), False),
    ("blank marker", lines(GOOD[0], {"text": " None ", "label": "y"}), False),
    ("nan marker label", lines(GOOD[0], {"text": "b", "label": "NaN"}), False),
    ("unicode blank", lines(GOOD[0], {"text": "\u3000\u00a0", "label": "y"}), False),
    ("empty string", lines(GOOD[0], {"text": "", "label": "y"}), False),
    ("missing key", lines(GOOD[0], {"label": "y"}), False),
    ("null value", lines(GOOD[0], {"text": None, "label": "y"}), False),
    ("float labels", lines({"text": "a", "label": 1.0}, {"text": "b", "label": 2.5}), True),
    ("bool labels", lines({"text": "a", "label": True}, {"text": "b", "label": False}), True),
    ("int then text label", lines({"text": "a", "label": 1}, {"text": "b", "label": "1"}), True),
    ("text then int label", lines({"text": "a", "label": "1"}, {"text": "b", "label": 2}), True),
    ("dict value", lines(GOOD[0], {"text": {"a": "b"}, "label": "y"}), False),
    ("list value", lines(GOOD[0], {"text": ["b"], "label": "y"}), False),
    ("huge whole number", lines(GOOD[0], {"text": "b", "label": 2 ** 64}), True),
    ("NaN value", lines(GOOD[0]) + '{"text": "b", "label": "y", "score": NaN}\n', False),
    ("negative Infinity value", lines(GOOD[0]) + '{"text": "b", "label": "y", "s": [1, -Infinity]}\n', False),
    ("Inf value", lines(GOOD[0]) + '{"text": "b", "label": "y", "s":Inf}\n', False),
    ("two objects on a line", lines(GOOD[0]) + json.dumps(GOOD[1]) + json.dumps(GOOD[2]) + "\n", False),
    ("object over two lines", lines(GOOD[0]) + '{"text": "b",\n"label": "y"}\n', False),
    ("object over lines balanced by a double line",
     '{"text": "a", "label": "x"}{"text": "b", "label": "y"}\n{"text": "c",\n"label": "z"}\n', False),
    ("null line first", "null\n" + lines(*GOOD), False),
    ("null line later", lines(GOOD[0], "null", GOOD[1]), False),
    ("null after an object", lines(GOOD[0]) + json.dumps(GOOD[1]) + " null\n", False),
    ("array line", lines(GOOD[0], "[1, 2]"), False),
    ("nesting past orjson's limit", lines(GOOD[0], nested(1025)), False),
    ("invalid UTF-8 in an unmapped value", lines(GOOD[0]).encode() + b'{"text": "b", "label": "y", "x": "caf\xe9"}\n', False),
    ("UTF-8 surrogate in an unmapped value", lines(GOOD[0]).encode() + b'{"text": "b", "label": "y", "x": "\xed\xa0\x80"}\n', False),
    ("lone surrogate escape", lines(GOOD[0]) + '{"text": "b", "label": "y", "x": "\\udc00"}\n', False),
    ("duplicate mapped key, blank last", lines(GOOD[0]) + '{"text": "b", "label": "y", "text": " "}\n', False),
    ("duplicate mapped key, text last", lines(GOOD[0]) + '{"text": " ", "label": "y", "text": "b"}\n', True),
    ("blank line of spaces", lines(GOOD[0], "   ", GOOD[1]), True),
    ("blank line of vertical tab", lines(GOOD[0], "\x0b", GOOD[1]), True),
    ("space after the object", lines(GOOD[0]) + json.dumps(GOOD[1]) + "  \n", True),
    ("trailing comma", lines(GOOD[0]) + '{"text": "b", "label": "y",}\n', False),
    ("BOM on a later line", lines(GOOD[0]) + "\ufeff" + lines(GOOD[1]), False),
    ("not JSON", lines(GOOD[0]) + '{"text": "b", "label": \n', False),
    ("nested mapped column", lines({"text": {"en": "a"}, "label": "x"}, {"text": {"en": "b"}, "label": "y"}), False),
    ("boolean text", lines({"text": True, "label": "x"}, {"text": False, "label": "y"}), True),
    ("float text", lines({"text": 1.5, "label": "x"}, {"text": -0.0, "label": "y"}), True),
    ("exponent past a float", lines(GOOD[0]) + '{"text": 1e400, "label": "y"}\n', False),
    ("long text with space at the end", lines({"text": "a long enough review ", "label": "x"}, GOOD[1]), True),
    ("long text of spaces", lines(GOOD[0], {"text": " " * 40, "label": "y"}), False),
    ("long text of unicode spaces", lines(GOOD[0], {"text": "\u3000" * 40, "label": "y"}), False),
    ("form feed line", lines(GOOD[0], "\x0c", GOOD[1]), True),
    ("NUL line", lines(GOOD[0], "\x00", GOOD[1]), False),
]


@pytest.mark.parametrize(("name", "content", "proved"), JSONL_CASES, ids=[case[0] for case in JSONL_CASES])
def test_json_lines(both, tmp_path, name, content, proved):
    _, fast = both(write(tmp_path, "train.jsonl", content), TEXT)
    assert fast == proved


def test_a_line_over_the_row_readers_limit_is_left_to_it(both, tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "MAX_RECORD_BYTES", 4096)
    path = write(tmp_path, "train.jsonl", lines(GOOD[0], {"text": "x" * 10_000, "label": "y"}, GOOD[1]))
    result, fast = both(path, TEXT)
    assert result[0] == "error" and "longer than" in result[1] and not fast
    at_limit = write(tmp_path, "limit.jsonl", lines(GOOD[0], {"text": "x" * (4096 - 30), "label": "y"}, GOOD[1]))
    assert both(at_limit, TEXT) == (("ok", 3, [("pos", 1), ("y", 1), ("neg", 1)]), True)


def test_a_csv_line_longer_than_a_block_is_left_to_the_row_reader(both, tmp_path, monkeypatch):
    monkeypatch.setattr(fastscan, "BLOCK_BYTES", 4096)
    path = write(tmp_path, "train.csv", f"text,label\na,pos\n{'x' * 10_000},y\nb,neg\n")
    assert both(path, TEXT) == (("ok", 3, [("pos", 1), ("y", 1), ("neg", 1)]), False)


def test_other_text_tasks(both, tmp_path):
    rows = [{"doc": f"document {i}", "sum": f"summary {i}", "p": f"prompt {i}", "c": f"reply {i}"} for i in range(5)]
    path = write(tmp_path, "train.jsonl", lines(*rows))
    for task, columns in ((Task.SUMMARIZATION, {"document": "doc", "summary": "sum"}),
                          (Task.TRANSLATION, {"source": "doc", "target": "sum"}),
                          (Task.TEXT_GENERATION, {"prompt": "p", "completion": "c"}),
                          (Task.CHAT_COMPLETION, {"prompt": "p", "completion": "c"})):
        assert both(path, ColumnMapping.build(columns, task)) == (("ok", 5, []), True)
    blank = write(tmp_path, "blank.jsonl", lines(*rows, {"doc": "d", "sum": "s", "p": "p", "c": " "}))
    result, fast = both(blank, ColumnMapping.build({"prompt": "p", "completion": "c"}, Task.TEXT_GENERATION))
    assert not fast
    assert result[1] == ('blank.jsonl line 6: column "c" is empty. Give every row a value for completion, or remove the '
                         'row. 1 of 6 rows are bad (line 6 "c": column "c" is empty): fix them, or skip them')


def test_two_keys_mapped_to_one_column(both, tmp_path):
    path = write(tmp_path, "train.jsonl", lines(*GOOD))
    assert both(path, ColumnMapping.build({"sentence1": "text", "sentence2": "text", "label": "label"}, TC))[1]


# ---------------------------------------------------------------------------- CSV and TSV

CSV_CASES = [
    ("plain", "text,label\na fine film,pos\ndull,neg\n", True),
    ("quoted delimiter", 'text,label\n"good, really",pos\nbad,neg\n', True),
    ("quoted newline", 'text,label\n"multi\nline",pos\n"two\r\nlines",neg\n', True),
    ("doubled quotes", 'text,label\n"say ""hi""",pos\n"""quoted""",neg\n"""""",x\n', True),
    ("CRLF", "text,label\r\na,pos\r\nb,neg\r\n", True),
    ("byte order mark", "\ufefftext,label\na,pos\nb,neg\n", True),
    ("no final newline", "text,label\na,pos\nb,neg", True),
    ("empty lines", "text,label\n\na,pos\n\r\nb,neg\n\n", True),
    ("spaces in the header", " text , label \na,pos\nb,neg\n", True),
    ("quoted header", '"text","label"\na,pos\nb,neg\n', True),
    ("unmapped columns", "id,text,extra,label\n1,a,,pos\n2,b,zz,neg\n", True),
    ("NUL in text", "text,label\na\x00b,pos\nb,neg\n", True),
    ("field at the csv limit", f"text,label,x\na,pos,{'y' * 131072}\nb,neg,z\n", True),
    ("one class", "text,label\na,pos\nb,pos\n", True),
    ("blank text", "text,label\na,pos\n  ,neg\n", False),
    ("NaN text", "text,label\na,pos\nNaN,neg\n", False),
    ("empty label", "text,label\na,pos\nb,\n", False),
    ("text after a closing quote", 'text,label\n"a"b,pos\nc,neg\n', False),
    ("space after a closing quote", 'text,label\n"a" ,pos\nc,neg\n', False),
    ("quote inside a field", 'text,label\na"b,pos\nc,neg\n', False),
    ("escaped quote then text", 'text,label\n"a"""b,pos\nc,neg\n', False),
    ("bare carriage return", "text,label\na\rb,pos\nc,neg\n", False),
    ("old Mac line ends", "text,label\ra,pos\rb,neg\r", False),
    ("carriage return in the header", "te\rxt,label\na,pos\nb,neg\n", False),
    ("quoted empty line", 'text,label\na,pos\n""\nb,neg\n', False),
    ("line of spaces", "text,label\na,pos\n  \nb,neg\n", False),
    ("field over the csv limit", f"text,label,x\na,pos,{'y' * 131073}\nb,neg,z\n", False),
    ("unterminated quote", 'text,label\na,pos\n"b,neg\n', False),
    ("too many fields", "text,label\na,pos,x\nb,neg\n", False),
    ("too few fields", "text,label\na\nb,neg\n", False),
    ("duplicate header", "text,text,label\na,b,pos\nc,d,neg\n", False),
    ("header only", "text,label\n", False),
    ("mapped column missing", "body,label\na,pos\nb,neg\n", False),
    ("not UTF-8", "text,label\ncaf\u00e9,pos\nb,neg\n".encode("latin-1"), False),
]


@pytest.mark.parametrize(("name", "content", "proved"), CSV_CASES, ids=[case[0] for case in CSV_CASES])
def test_csv(both, tmp_path, name, content, proved):
    _, fast = both(write(tmp_path, "train.csv", content), TEXT)
    assert fast == proved


TSV_CASES = [
    ("plain", "text\tlabel\na\tpos\nb\tneg\n", True),
    ("quotes are text", 'text\tlabel\n"a\tpos\nb"c\tneg\n"\t"\n', True),
    ("CRLF", "text\tlabel\r\na\tpos\r\nb\tneg\r\n", True),
    ("bare carriage return", "text\tlabel\na\rb\tpos\nc\tneg\n", False),
    ("too few fields", "text\tlabel\na\tpos\nb\n", False),
]


@pytest.mark.parametrize(("name", "content", "proved"), TSV_CASES, ids=[case[0] for case in TSV_CASES])
def test_tsv(both, tmp_path, name, content, proved):
    _, fast = both(write(tmp_path, "train.tsv", content), TEXT)
    assert fast == proved


# ---------------------------------------------------------------------------- many blocks


def many_rows(count: int, seed: int) -> Iterator[tuple[str, str]]:
    rng = random.Random(seed)
    words = ["good", "bad", "a, b", 'say "hi"', "multi\nline", "NaN", "Infinity", "caf\u00e9", "x"]
    for index in range(count):
        yield " ".join(rng.choice(words) for _ in range(rng.randint(1, 12))) + f" {index}", rng.choice(["pos", "neg"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_files_of_many_blocks(both, tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(fastscan, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(fastscan, "PARSE_BLOCK_BYTES", 4096)
    rows = list(many_rows(3000, seed=1))
    if fmt == "jsonl":
        content = lines(*({"text": text, "label": label} for text, label in rows))
    else:
        content = "text,label\n" + "".join(f'"{text.replace(chr(34), chr(34) * 2)}",{label}\n' for text, label in rows)
    path = write(tmp_path, f"train.{fmt}", content)
    assert len(path.read_bytes()) > 30 * fastscan.BLOCK_BYTES
    result, fast = both(path, TEXT)
    assert fast and result[1] == 3000


MUTATIONS = ['"', "\r", "\n", "\r\n", "{", "}", "[", "]", ",", ":", " ", "\\", "NaN", "-Infinity", "null", "\x00",
             "\u3000", "\ufeff", "\xe9", '""', "\t", "None", "1e400", "\ud800"]


def mutate(content: str, rng: random.Random) -> bytes:
    data = content
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        cut = rng.choice([0, 0, 1, 2])
        data = data[:at] + rng.choice(MUTATIONS) + data[at + cut:]
    return data.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl shared with the helper", "csv", "tsv"])
def test_mutated_files_get_the_row_readers_answer(both, tmp_path, monkeypatch, request, fmt):
    """A few hundred small random edits of a good file: whatever the row reader says, the fast path
    must say too, across block boundaries (and, shared, across the helper's chunks)."""
    monkeypatch.setattr(fastscan, "BLOCK_BYTES", 256)
    monkeypatch.setattr(fastscan, "PARSE_BLOCK_BYTES", 4096)
    if fmt.startswith("jsonl "):
        request.getfixturevalue("shared")
        monkeypatch.setattr(linescan, "CHUNK_BYTES", 256)
        fmt = "jsonl"
    rows = [{"text": text, "label": label} for text, label in many_rows(12, seed=2)]
    if fmt == "jsonl":
        base = lines(*rows)
    elif fmt == "csv":
        base = "text,label\n" + "".join(f'"{row["text"].replace(chr(34), chr(34) * 2)}",{row["label"]}\n' for row in rows)
    else:
        base = "text\tlabel\n" + "".join(f'{row["text"].replace(chr(10), " ")}\t{row["label"]}\n' for row in rows)
    rng = random.Random(fmt)
    proved = 0
    for index in range(150):
        _, fast = both(write(tmp_path, f"m{index}.{fmt}", mutate(base, rng)), TEXT)
        proved += fast
    assert proved, "some edits leave a file the fast path proves"


def test_the_whitespace_table_covers_every_space():
    assert not [c for c in range(0x3001, 0x110000) if chr(c).isspace()]


# ---------------------------------------------------------------------------- ranges and the helper process

RANGE_CASES = [
    ("plain", lines(*GOOD)),
    ("byte order mark", "\ufeff" + lines(*GOOD)),
    ("CRLF and blank lines", lines(GOOD[0], "", GOOD[1], "   ", GOOD[2]).replace("\n", "\r\n")),
    ("no final newline", lines(*GOOD).rstrip("\n")),
    ("numbers and short text", lines({"text": 5, "label": 1}, {"text": "no", "label": True}, GOOD[0])),
]


@pytest.mark.parametrize(("name", "content"), RANGE_CASES, ids=[case[0] for case in RANGE_CASES])
def test_ranges_cut_anywhere_count_every_line_once(tmp_path, name, content):
    """Two ranges cut at any byte, a line crossing the cut included, count what one range counts."""
    path = write(tmp_path, "train.jsonl", content)
    size = path.stat().st_size
    seen: list[object] = []

    def scanned(*cuts: int) -> tuple[int, list[tuple[str, int]]]:
        tally = linescan.Tally(judge=seen.extend)
        for start, end in zip((0, *cuts), (*cuts, size), strict=True):
            linescan.scan_range(path, start, end, ["text", "label"], "label", reading.MAX_RECORD_BYTES, tally)
        return tally.rows, sorted(tally.labels.items())

    whole = scanned()
    assert whole[0] == 3
    for cut in range(size + 1):
        assert scanned(cut) == whole, cut
    assert scanned(1, size // 2, size - 1) == whole


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """Files of a few kilobytes are shared with the helper process in 512-byte chunks, this process
    starting once the helper has counted the last chunk (its claim, the values to judge and the count
    are three frames) or has ended, so that the helper always counts some; returns how many chunks the
    helper counted in each scan since."""
    monkeypatch.setattr(fastscan, "PARALLEL_BYTES", 1)
    monkeypatch.setattr(linescan, "CHUNK_BYTES", 512)
    helped: list[int] = []
    claim, close = fastscan._Helper.claim, fastscan._Helper.close

    def claim_once_it_speaks(self, index):
        deadline = time.monotonic() + 30
        while (index == 0 and self._frames.qsize() < 3 and self._process.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.001)
        claim(self, index)

    def close_counting(self):
        helped.append(len(self.counts))
        close(self)

    monkeypatch.setattr(fastscan._Helper, "claim", claim_once_it_speaks)
    monkeypatch.setattr(fastscan._Helper, "close", close_counting)
    return lambda: helped


def many_jsonl(count: int, **extra: dict) -> list[dict | str]:
    rows: list[dict | str] = [{"text": text, "label": label} for text, label in many_rows(count, seed=3)]
    for index, row in extra.items():
        rows[int(index.removeprefix("at"))] = row
    return rows


def test_a_file_shared_with_the_helper_counts_as_the_row_reader_does(both, tmp_path, shared):
    path = write(tmp_path, "train.jsonl", "\ufeff" + lines(*many_jsonl(400)))
    result, fast = both(path, TEXT)
    assert fast and result[1] == 400 and shared() and shared()[0] > 0
    labels = [label for label, _ in result[2]]
    assert labels == list(dict.fromkeys(row[1] for row in many_rows(400, seed=3)))


@pytest.mark.parametrize(("bad", "problem"), [
    ({"text": " ", "label": "pos"}, 'column "text" is empty'),
    ('{"text": "x", "label": ', "is not valid JSON"),
    ({"label": "pos"}, 'column "text" is missing'),
])
def test_a_bad_row_in_the_helpers_half_is_named_by_the_row_reader(both, tmp_path, shared, bad, problem):
    path = write(tmp_path, "train.jsonl", lines(*many_jsonl(400, at398=bad)))
    result, fast = both(path, TEXT)
    assert not fast and len(shared()) == 1
    assert result[0] == "error" and "line 399" in result[1] and problem in result[1]


def test_a_helper_that_cannot_start_leaves_the_file_to_this_process(both, tmp_path, shared, monkeypatch):
    monkeypatch.setattr(linescan, "command", lambda *args: [sys.executable, "-c", "raise SystemExit(1)"])
    path = write(tmp_path, "train.jsonl", lines(*many_jsonl(400)))
    assert both(path, TEXT)[0][1] == 400 and both(path, TEXT)[1]
    assert shared() and not any(shared())


def test_dotted_columns_are_read_without_the_helper(both, tmp_path, shared):
    rows = [{"review": {"en": f"text {index}"}, "label": "pos" if index % 2 else "neg"} for index in range(300)]
    path = write(tmp_path, "train.jsonl", lines(*rows))
    result, fast = both(path, ColumnMapping.build({"sentence1": "review.en", "label": "label"}, TC))
    assert fast and result[1] == 300 and not shared()

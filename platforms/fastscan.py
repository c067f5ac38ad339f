"""A columnar fast path for checking large JSON Lines, CSV and TSV files before a job is recorded.

`platforms.datasets.validate_file` reads every row of an upload. Row by row in Python that tops out
at a few hundred MB/s, so for tasks whose examples are plain text columns, pyarrow parses the file
here in bounded blocks on all cores and only the mapped columns are checked, with vectorised kernels.

This path can only say "the file is good"; it never words an error. The row-by-row reader is the
definition of a good file, and pyarrow is more lenient than it: pyarrow's JSON reader takes NaN and
Infinity, several objects on one line, an object spread over lines, invalid UTF-8 and any nesting
depth, and its CSV reader takes `"a"b` and a bare carriage return, all of which orjson or the csv
module refuse. So the whole file is first checked, before pyarrow reads it, for a shape on which
both readers provably agree (see `_JsonLinesProof` and `_DelimitedProof`). Whenever that proof, a
value check or anything else fails, `scan` returns None and the caller runs the exact reader, whose
messages name the file, the line and the column.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

# The proof reads the file in blocks of 1 MB; a line longer than that is left to the row reader, and
# with it the row reader's 8 MB line limit.
BLOCK_BYTES = 1 << 20
# pyarrow reads ahead up to 32 blocks of its own, so its blocks are smaller: memory stays flat.
PARSE_BLOCK_BYTES = 1 << 18
# Batches are checked in groups of about this size: each compute call has a fixed cost.
CHECK_BYTES = 2 << 20
# Everything here allocates from the C allocator, which hands freed blocks back; mimalloc, pyarrow's
# default, keeps tens of MB per thread, which grew the process with the file.
_MEMORY = pa.system_memory_pool()
# A value is blank when its stripped text is empty or a marker such as "none"; such text is at most
# this many bytes unless the value starts or ends with whitespace.
SHORT_VALUE_BYTES = 16
# orjson refuses a line nested deeper than this (the row's own object counts).
MAX_JSON_DEPTH = 1024
# The csv module refuses a field longer than this many characters.
CSV_FIELD_LIMIT = csv.field_size_limit()

_LF, _CR, _QUOTE, _OPEN_BRACE, _CLOSE_BRACE = 10, 13, 34, 123, 125
_JSON_SPACE = np.frombuffer(b" \t\r\n", np.uint8)
_BEFORE_NUMBER = np.frombuffer(b":,[-", np.uint8)


def _constant(items: Sequence[bytes], kind: pa.DataType) -> pa.Array:
    """An array built from its buffers: pyarrow converting any Python object (`pa.array`, or a number
    given to a compute function) imports pandas when it is installed, 40 MB in every process."""
    offsets = np.cumsum([0, *map(len, items)], dtype=np.int32)
    return pa.Array.from_buffers(kind, len(items), [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(items))])


# Every character str.strip() removes (none lies above U+3000; tests check the whole range), and the
# bytes their UTF-8 encodings end with.
_SPACES = [chr(c).encode() for c in range(0x3001) if chr(c).isspace()]
_WHITESPACE = _constant(_SPACES, pa.string())
_LAST_BYTES = _constant(sorted({space[-1:] for space in _SPACES}), pa.binary())
_SHORT_VALUE = pa.Array.from_buffers(pa.int32(), 1, [None, pa.py_buffer(np.array([SHORT_VALUE_BYTES], np.int32))])[0]


class _Unproven(Exception):
    """This block is outside the shape on which pyarrow and the row reader are known to agree."""


@dataclass
class ScanResult:
    """What the exact reader would have counted: its rows, and the label column's values."""

    rows: int = 0
    labels: Counter[str] = field(default_factory=Counter)


def _prove_file(path: Path, prove: Callable[[bytes | memoryview, bool], int]) -> int:
    """Run a proof over the whole file, a block at a time, in segments of whole lines; return the
    number of records it counted.

    The file is proven before pyarrow reads any of it, because pyarrow's JSON reader crashes on some
    inputs the proof refuses (`null` as the first value of a block, apache/arrow#47409), and the file
    is read twice rather than fed to pyarrow through a Python file object: pyarrow's threads calling
    back into Python can abort the interpreter as it exits (apache/arrow#34314). Blocks are read into
    one reused buffer, so that reading allocates nothing per block."""
    records = 0
    partial = b""
    buffer = bytearray(BLOCK_BYTES)
    view = memoryview(buffer)
    with path.open("rb") as handle:
        if handle.read(3) != b"\xef\xbb\xbf":
            handle.seek(0)
        while got := handle.readinto(buffer):
            last = buffer.rfind(b"\n", 0, got)
            if last < 0:
                partial += view[:got]
                if len(partial) > BLOCK_BYTES:
                    raise _Unproven("a line longer than a block")
                continue
            first = buffer.find(b"\n", 0, got)
            records += prove(partial + view[:first + 1], False)
            if last > first:
                records += prove(view[first + 1:last + 1], False)
            partial = bytes(view[last + 1:got])
    return records + prove(partial, True)


class _Masks:
    """Two reused boolean masks and a byte buffer for the vectorised proofs: a fresh megabyte per
    operation and block costs time, and the heap it churns grows the process with the file."""

    def __init__(self) -> None:
        self._buffers = (np.empty(0, bool), np.empty(0, bool), np.empty(0, np.uint8))

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._buffers[0]) < n:
            self._buffers = (np.empty(n, bool), np.empty(n, bool), np.empty(n, np.uint8))
        first, second, scratch = self._buffers
        return first[:n], second[:n], scratch[:n]


def _bytes_of(segment: bytes | memoryview) -> np.ndarray:
    """The segment as a byte array (no copy), once it is known to be UTF-8 as the row reader requires.
    A view is ASCII when the whole buffer under it is, which is quicker to ask."""
    if not (segment.isascii() if isinstance(segment, bytes) else segment.obj.isascii()):
        try:
            str(segment, "utf-8")
        except UnicodeDecodeError:
            raise _Unproven("not UTF-8") from None
    return np.frombuffer(segment, np.uint8)


def _lines(a: np.ndarray, breaks: np.ndarray, final: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (before any CR LF) of each non-empty line of a segment that ends a line, given
    the positions of its line feeds."""
    ends = breaks
    if final and len(a) and a[-1] != _LF:
        ends = np.append(ends, len(a))
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    ends = ends - ((ends > starts) & (a[ends - 1] == _CR))
    full = ends > starts
    return starts[full], ends[full]


class _JsonLinesProof:
    """Proves that the row reader would take a segment of a JSON Lines file, and counts its records.

    The shape: UTF-8; every non-empty line starts with `{` and ends with `}`; no line holds more than
    MAX_JSON_DEPTH `{` and `[`; no NaN or Infinity where a value can start. With pyarrow's parse of
    the same bytes succeeding and its row count equal to the number of lines, each line is one
    object: a `}` at the end of a line followed by `{` at the start of the next can only be a
    boundary between top-level values (inside a value a `,` or closing bracket must come next), so
    every line holds a whole number of values, at least one, and equal counts leave exactly one.

    One pass finds every byte the proof looks at (line feeds, opening brackets and the capitals I to
    N that start NaN and Inf), which is cheaper than a pass for each kind.
    """

    def __init__(self) -> None:
        self._masks = _Masks()

    def __call__(self, segment: bytes | memoryview, final: bool) -> int:
        a = _bytes_of(segment)
        marks, other, scratch = self._masks.get(len(a))
        np.equal(a, _LF, out=marks)
        np.logical_or(marks, np.less_equal(np.subtract(a, ord("I"), out=scratch), ord("N") - ord("I"), out=other),
                      out=marks)
        np.logical_or(marks, np.equal(np.bitwise_or(a, 0x20, out=scratch), _OPEN_BRACE, out=other), out=marks)
        where = np.flatnonzero(marks)
        found = a[where]
        starts, ends = _lines(a, where[found == _LF], final)
        if not (np.all(a[starts] == _OPEN_BRACE) and np.all(a[ends - 1] == _CLOSE_BRACE)):
            raise _Unproven("a line that is not one object")
        brackets = where[(found | 0x20) == _OPEN_BRACE]  # `{` or `[`, one bit apart
        if len(brackets) - (len(starts) - 1) > MAX_JSON_DEPTH:
            per_line = np.bincount(np.searchsorted(starts, brackets, side="right"))
            if per_line.max() > MAX_JSON_DEPTH:
                raise _Unproven("deep nesting")
        self._refuse_non_numbers(a, where[found - ord("I") <= ord("N") - ord("I")])
        return len(starts)

    @staticmethod
    def _refuse_non_numbers(a: np.ndarray, capitals: np.ndarray) -> None:
        """NaN, Inf and Infinity (signed or not) are numbers to pyarrow and errors to orjson. In text
        they are harmless, so only those whose previous non-blank byte could precede a value count."""
        capitals = capitals[capitals + 2 < len(a)]
        first, second, third = a[capitals], a[capitals + 1], a[capitals + 2]
        nan = (first == ord("N")) & (second == ord("a")) & (third == ord("N"))
        inf = (first == ord("I")) & (second == ord("n")) & (third == ord("f"))
        before = capitals[nan | inf] - 1
        if not len(before):
            return
        while True:
            blank = np.isin(a[before], _JSON_SPACE)
            if not blank.any():
                break
            before[blank] -= 1
        if np.isin(a[before], _BEFORE_NUMBER).any():
            raise _Unproven("NaN or Infinity")


class _DelimitedProof:
    """Proves that the csv module would split a segment of a CSV or TSV file as pyarrow does.

    The shape: UTF-8; a carriage return outside quotes is followed by a line feed; and, for CSV,
    quotes only open a field (after a delimiter or a line break), close one (before a delimiter, a
    line break or the end), or come doubled inside one. Quotes elsewhere are literal to the csv module
    and `"a"b` is an error to it, while pyarrow reads both its own way. Counting quotes from the start
    of the file tells which are inside a field: an even count before a quote means it opens one.
    """

    def __init__(self, delimiter: str, quoted: bool):
        self._delimiter = ord(delimiter)
        self._quoted = quoted
        self._masks = _Masks()
        self.quotes = 0

    def __call__(self, segment: bytes | memoryview, final: bool) -> int:
        a = _bytes_of(segment)
        marks, other, _ = self._masks.get(len(a))
        np.equal(a, _CR, out=marks)
        if self._quoted:
            np.logical_or(marks, np.equal(a, _QUOTE, out=other), out=marks)
        where = np.flatnonzero(marks)
        found = a[where]
        quotes, returns = where[found == _QUOTE], where[found == _CR]
        outside = returns[(self.quotes + np.searchsorted(quotes, returns)) % 2 == 0]
        if len(outside) and (outside[-1] + 1 >= len(a) or np.any(a[outside + 1] != _LF)):
            raise _Unproven("a carriage return without a line feed")
        if len(quotes):
            before = np.where(quotes > 0, a[quotes - 1], _LF)
            after = np.where(quotes + 1 < len(a), a[np.minimum(quotes + 1, len(a) - 1)], _LF if final else 0)
            opening = (self.quotes + np.arange(len(quotes))) % 2 == 0
            opens_field = (before == self._delimiter) | (before == _LF) | (before == _QUOTE)
            closes_field = (after == self._delimiter) | (after == _LF) | (after == _CR) | (after == _QUOTE)
            if not np.all(np.where(opening, opens_field, closes_field)):
                raise _Unproven("a quote inside a field")
            self.quotes += len(quotes)
        if final and self.quotes % 2:
            raise _Unproven("a quoted field left open")
        return 0


def _json_reader(path: Path, source: pa.NativeFile, columns: Sequence[str]) -> pa.RecordBatchReader | None:
    """pyarrow reads only the mapped columns, typed as in the first record: text, or whole numbers
    (which the row reader turns into text the same way, `str(12)`). Any other first value, or a
    later value of another type, leaves the file to the row reader."""
    with path.open("rb") as handle:
        first = handle.readline(BLOCK_BYTES).removeprefix(b"\xef\xbb\xbf")
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    types = {str: pa.string(), int: pa.int64()}
    if any(type(record.get(column)) not in types for column in columns):
        return None
    schema = pa.schema([(column, types[type(record[column])]) for column in columns])
    return pa_json.open_json(
        source,
        read_options=pa_json.ReadOptions(block_size=PARSE_BLOCK_BYTES),
        parse_options=pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        memory_pool=_MEMORY,
    )


def _delimited_reader(path: Path, source: pa.NativeFile, columns: Sequence[str],
                      delimiter: str) -> tuple[pa.RecordBatchReader, list[str]] | None:
    """The header is read by the csv module itself (names are stripped, as the row reader does); pyarrow
    reads every column as text, so that no field over the csv module's size limit goes unseen."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open("rb") as handle:
        first = handle.readline(BLOCK_BYTES).removeprefix(b"\xef\xbb\xbf")
    try:
        header = next(csv.reader([first.decode("utf-8")], delimiter=delimiter, quoting=quoting, strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        return None
    names = [name.strip() for name in header]
    if len(set(names)) != len(names) or not any(names) or any(column not in names for column in columns):
        return None
    positions = [f"f{index}" for index in range(len(names))]
    reader = pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(block_size=PARSE_BLOCK_BYTES, skip_rows=1, column_names=positions),
        parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting == csv.QUOTE_MINIMAL else False,
                                          double_quote=True, newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(column_types={name: pa.string() for name in positions},
                                              strings_can_be_null=False, quoted_strings_can_be_null=False),
        memory_pool=_MEMORY,
    )
    return reader, [positions[names.index(column)] for column in columns]


def _suspects(values: pa.ChunkedArray) -> list[str]:
    """The distinct values that might be blank, for `is_blank` to judge: the short ones, those whose
    first character is whitespace, and those whose last byte could end a whitespace character."""
    raw = pc.cast(values, pa.binary(), memory_pool=_MEMORY)
    short = pc.less_equal(pc.binary_length(raw, memory_pool=_MEMORY), _SHORT_VALUE, memory_pool=_MEMORY)
    first = pc.utf8_slice_codeunits(values, 0, 1, memory_pool=_MEMORY)
    last = pc.binary_slice(raw, -1, memory_pool=_MEMORY)
    edges = pc.or_(pc.is_in(first, value_set=_WHITESPACE, memory_pool=_MEMORY),
                   pc.is_in(last, value_set=_LAST_BYTES, memory_pool=_MEMORY), memory_pool=_MEMORY)
    maybe = pc.filter(values, pc.or_(short, edges, memory_pool=_MEMORY), memory_pool=_MEMORY)
    return pc.unique(maybe, memory_pool=_MEMORY).to_pylist()


def _check(batches: list[pa.RecordBatch], columns: Sequence[str], label: str | None, result: ScanResult,
           is_blank: Callable[[str], bool], all_columns: bool) -> None:
    """Check a group of batches: the columns are present and non-blank, no CSV field is over the csv
    module's limit; count the rows and the labels."""
    table = pa.Table.from_batches(batches)
    for name in table.column_names if all_columns else columns:
        values = table.column(name)
        if values.null_count:
            raise _Unproven(f"a missing value in {name}")
        if all_columns and pc.max(pc.binary_length(values, memory_pool=_MEMORY)).as_py() > CSV_FIELD_LIMIT:
            raise _Unproven("a field over the csv module's limit")
    for name in columns:
        values = table.column(name)
        if pa.types.is_string(values.type) and any(is_blank(value) for value in _suspects(values)):
            raise _Unproven(f"a blank value in {name}")
    if label is not None:
        counts = pc.value_counts(table.column(label), memory_pool=_MEMORY)
        for value, count in zip(counts.field(0).to_pylist(), counts.field(1).to_pylist(), strict=True):
            result.labels[str(value)] += count
    result.rows += table.num_rows


def _batches_of(reader: pa.RecordBatchReader) -> Iterator[list[pa.RecordBatch]]:
    """The reader's batches in groups of about CHECK_BYTES."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        group.append(batch)
        size += batch.nbytes
        if size >= CHECK_BYTES:
            yield group
            group, size = [], 0
    if group:
        yield group


def scan(path: Path, fmt: str, columns: Sequence[str], label: str | None,
         is_blank: Callable[[str], bool]) -> ScanResult | None:
    """Count the records of a JSON Lines, CSV or TSV file whose mapped `columns` are all present, non-blank
    text (or whole numbers in JSON), and the values of its `label` column; None when the file is not
    proven good here. `is_blank` must only take values whose stripped text is at most 4 characters."""
    columns = list(dict.fromkeys(columns))
    delimited = fmt != "jsonl"
    delimiter = "\t" if fmt == "tsv" else ","
    result = ScanResult()
    try:
        records = _prove_file(path, _DelimitedProof(delimiter, fmt == "csv") if delimited else _JsonLinesProof())
        with pa.OSFile(str(path), memory_pool=_MEMORY) as source:
            if delimited:
                opened = _delimited_reader(path, source, columns, delimiter)
                reader, names = opened if opened else (None, columns)
            else:
                reader, names = _json_reader(path, source, columns), columns
            if reader is None:
                return None
            with reader:
                label_name = names[columns.index(label)] if label is not None else None
                for batches in _batches_of(reader):
                    _check(batches, names, label_name, result, is_blank, delimited)
    except (_Unproven, pa.ArrowException, OSError):
        return None
    # A CSV row may span lines (a quoted line break), so only JSON Lines has a line count to match.
    if not result.rows or (not delimited and result.rows != records):
        return None
    return result

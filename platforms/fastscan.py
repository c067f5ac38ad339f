"""Fast paths for checking large JSON Lines, CSV and TSV files before a job is recorded.

`platforms.datasets.validate_file` reads every row of an upload. Row by row through the reader and
the example builders that tops out at a few hundred MB/s, so for tasks whose examples are plain text
columns only the mapped columns are checked here: JSON Lines by checks over batches of lines with
the row reader's own parser and tests (orjson, `is_blank`, `lookup`; `platforms.linescan`), a large
file shared with a helper process, CSV and TSV by pyarrow's CSV reader in bounded blocks with
vectorised kernels.

These paths can only say "the file is good"; they never word an error. The row-by-row reader is the
definition of a good file. The JSON Lines checks call what the row reader calls, so they cannot be
more lenient; pyarrow's CSV reader is (it takes `"a"b` and a bare carriage return, which the csv module
refuses), so the file is also checked, in a thread beside pyarrow, for a shape on which both readers
provably agree (`_DelimitedProof`). Whenever that proof, a value check or anything else fails, `scan`
returns None and the caller runs the exact reader, whose messages name the file, the line and the
column.
"""

from __future__ import annotations

import csv
import marshal
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from queue import SimpleQueue

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from platforms import linescan
from platforms.datasets import reading
from platforms.linescan import SHORT_VALUE_BYTES, Unproven

# Files are read in blocks of 1 MB; a CSV line longer than that is left to the row reader, and with it
# the row reader's 8 MB line limit.
BLOCK_BYTES = 1 << 20
# pyarrow reads ahead up to 32 blocks of its own, so its blocks are smaller: memory stays flat.
PARSE_BLOCK_BYTES = 1 << 18
# Batches are checked in groups of about this size: each compute call has a fixed cost.
CHECK_BYTES = 2 << 20
# Everything here allocates from the C allocator, which hands freed blocks back; mimalloc, pyarrow's
# default, keeps tens of MB per thread, which grew the process with the file.
_MEMORY = pa.system_memory_pool()
# From this size on, a JSON Lines file is shared with a helper process: below it (measured: about
# 33 MB) the helper's start (~40 ms of the other core, ~3 ms of this one) buys less than it costs.
PARALLEL_BYTES = 32 << 20
# The csv module refuses a field longer than this many characters.
CSV_FIELD_LIMIT = csv.field_size_limit()

_LF, _CR, _QUOTE = 10, 13, 34


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


@dataclass
class ScanResult:
    """What the exact reader would have counted: its rows, and the label column's values."""

    rows: int = 0
    labels: Counter[str] = field(default_factory=Counter)


def _prove_file(path: Path, prove: Callable[[bytes | memoryview, bool], None]) -> None:
    """Run a proof over the whole file, a block at a time, in segments of whole lines.

    The file is read apart from pyarrow's reader rather than fed to it through a Python file object:
    pyarrow's threads calling back into Python can abort the interpreter as it exits
    (apache/arrow#34314). Blocks are read into one reused buffer, so that reading allocates nothing
    per block."""
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
                    raise Unproven("a line longer than a block")
                continue
            first = buffer.find(b"\n", 0, got)
            prove(partial + view[:first + 1], False)
            if last > first:
                prove(view[first + 1:last + 1], False)
            partial = bytes(view[last + 1:got])
    prove(partial, True)


def _under(segment: bytes | memoryview) -> bytes | bytearray:
    """What a segment lies in: itself, or for a view the whole block buffer under it. Asking the buffer
    (ASCII? a carriage return anywhere?) runs at memchr speed and errs only on the safe side."""
    return segment if isinstance(segment, bytes) else segment.obj


def _bytes_of(segment: bytes | memoryview) -> np.ndarray:
    """The segment as a byte array (no copy), once it is known to be UTF-8 as the row reader requires."""
    if not _under(segment).isascii():
        try:
            str(segment, "utf-8")
        except UnicodeDecodeError:
            raise Unproven("not UTF-8") from None
    return np.frombuffer(segment, np.uint8)


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
        self.quotes = 0

    def __call__(self, segment: bytes | memoryview, final: bool) -> None:
        """Most files hold no carriage return, so the vectorised pass usually looks for quotes alone."""
        a = _bytes_of(segment)
        quotes = np.flatnonzero(a == _QUOTE) if self._quoted else np.empty(0, np.intp)
        if _under(segment).find(b"\r") >= 0:
            returns = np.flatnonzero(a == _CR)
            outside = returns[(self.quotes + np.searchsorted(quotes, returns)) % 2 == 0]
            if len(outside) and (outside[-1] + 1 >= len(a) or np.any(a[outside + 1] != _LF)):
                raise Unproven("a carriage return without a line feed")
        if len(quotes):
            before = np.where(quotes > 0, a[quotes - 1], _LF)
            after = np.where(quotes + 1 < len(a), a[np.minimum(quotes + 1, len(a) - 1)], _LF if final else 0)
            opening = (self.quotes + np.arange(len(quotes))) % 2 == 0
            opens_field = (before == self._delimiter) | (before == _LF) | (before == _QUOTE)
            closes_field = (after == self._delimiter) | (after == _LF) | (after == _CR) | (after == _QUOTE)
            if not np.all(np.where(opening, opens_field, closes_field)):
                raise Unproven("a quote inside a field")
            self.quotes += len(quotes)
        if final and self.quotes % 2:
            raise Unproven("a quoted field left open")


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
           is_blank: Callable[[object], bool]) -> None:
    """Check a group of batches: the columns are present and non-blank, no CSV field is over the csv
    module's limit; count the rows and the labels."""
    table = pa.Table.from_batches(batches)
    for name in table.column_names:
        values = table.column(name)
        if values.null_count:
            raise Unproven(f"a missing value in {name}")
        if pc.max(pc.binary_length(values, memory_pool=_MEMORY)).as_py() > CSV_FIELD_LIMIT:
            raise Unproven("a field over the csv module's limit")
    if label is not None:
        counts = pc.value_counts(table.column(label), memory_pool=_MEMORY)
        values = counts.field(0).to_pylist()
        if any(map(is_blank, values)):  # every distinct label is at hand: no need to pick suspects
            raise Unproven(f"a blank value in {label}")
        for value, count in zip(values, counts.field(1).to_pylist(), strict=True):
            result.labels[str(value)] += count
    for name in columns:
        values = table.column(name)
        if name != label and any(is_blank(value) for value in _suspects(values)):
            raise Unproven(f"a blank value in {name}")
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


class _Helper:
    """The helper process of `platforms.linescan`, its frames read by a thread into a queue, so that
    this process looks at them between its own chunks without ever waiting. It is told, before each
    chunk this process starts, that chunk's index. Its frames come in order, so once it has claimed a
    chunk, the counts of every chunk after it are in."""

    def __init__(self, path: Path, size: int, step: int, columns: Sequence[str], label: str | None, limit: int):
        self.lowest = linescan.chunks(size, step)  # the lowest chunk the helper has claimed
        self.counts: dict[int, tuple[int, dict[str, int]]] = {}
        self.done = False
        self._frames: SimpleQueue[tuple | None] = SimpleQueue()
        self._process = subprocess.Popen(linescan.command(str(path.resolve()), size, step, columns, label, limit),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, name="fastscan-helper", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                self._frames.put(marshal.load(self._process.stdout))
        except (EOFError, OSError, ValueError, TypeError):
            self._frames.put(None)

    def claim(self, index: int) -> None:
        try:
            self._process.stdin.write(index.to_bytes(linescan.CLAIM_BYTES, "little"))
            self._process.stdin.flush()
        except OSError:
            pass  # it has stopped: its frames say how far it came

    def poll(self, judge: Callable[[set], None]) -> None:
        """Take in the frames that have come."""
        while not self.done and not self._frames.empty():
            frame = self._frames.get()
            if frame is None or frame[0] == "done":
                self.done = True
            elif frame[0] == "claim":
                self.lowest = frame[1]
            elif frame[0] == "chunk":
                self.counts[frame[1]] = frame[2], frame[3]
            elif frame[0] == "suspects":
                judge(frame[1])
            else:
                raise Unproven(frame[1])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._reader.join()
        self._process.stdout.close()
        with suppress(OSError):
            self._process.stdin.close()


def _scan_json_lines(path: Path, columns: Sequence[str], label: str | None,
                     is_blank: Callable[[object], bool]) -> ScanResult:
    """The row reader's own checks of each line (`platforms.linescan`), over the whole file. orjson
    holds the GIL, so a large file is shared with a helper process on the other core, chunk by chunk
    from either end. This process never waits for the helper: where they meet, it also counts the
    chunk the helper is on, and it counts whatever the helper did not (it could not start, or died).
    Dotted columns need the row reader's `lookup`, which the helper does not import, so their files
    are read here alone."""
    def judge(values: set) -> None:
        if any(map(is_blank, values)):
            raise Unproven("a blank value")

    limit, size, step = reading.MAX_RECORD_BYTES, path.stat().st_size, linescan.CHUNK_BYTES
    tally = linescan.Tally(judge=judge, lookup=reading.lookup)
    helper = None
    if (size >= PARALLEL_BYTES and sys.executable and len(os.sched_getaffinity(0)) > 1
            and not any("." in column for column in columns)):
        with suppress(OSError):
            helper = _Helper(path, size, step, columns, label, limit)
    if helper is None:
        linescan.scan_range(path, 0, size, columns, label, limit, tally)
        return ScanResult(rows=tally.rows, labels=tally.labels)
    try:
        index, last = 0, linescan.chunks(size, step) - 1
        while index <= min(helper.lowest, last):
            helper.claim(index)
            linescan.scan_range(path, *linescan.chunk(index, size, step), columns, label, limit, tally)
            index += 1
            helper.poll(judge)
        for index in range(index, last + 1):
            rows, labels = helper.counts[index]
            tally.rows += rows
            tally.labels.update(labels)
    finally:
        helper.close()
    return ScanResult(rows=tally.rows, labels=tally.labels)


def _read_delimited(path: Path, columns: Sequence[str], label: str | None, is_blank: Callable[[object], bool],
                    delimiter: str) -> ScanResult:
    result = ScanResult()
    with pa.OSFile(str(path), memory_pool=_MEMORY) as source:
        opened = _delimited_reader(path, source, columns, delimiter)
        if opened is None:
            raise Unproven("a header the fast path does not read")
        reader, names = opened
        with reader:
            label_name = names[columns.index(label)] if label is not None else None
            for batches in _batches_of(reader):
                _check(batches, names, label_name, result, is_blank)
    return result


def scan(path: Path, fmt: str, columns: Sequence[str], label: str | None,
         is_blank: Callable[[object], bool]) -> ScanResult | None:
    """Count the records of a JSON Lines, CSV or TSV file whose mapped `columns` are all present and
    non-blank text (or, in JSON, a number or a boolean, read as `str(value)`), and the values of its
    `label` column; None when the file is not proven good here. `is_blank` is the row reader's test."""
    columns = list(dict.fromkeys(columns))
    if fmt == "jsonl":
        try:
            result = _scan_json_lines(path, columns, label, is_blank)
        except (Unproven, OSError):
            return None
        return result if result.rows else None
    delimiter = "\t" if fmt == "tsv" else ","
    with ThreadPoolExecutor(1, thread_name_prefix="fastscan-proof") as pool:
        proof = pool.submit(_prove_file, path, _DelimitedProof(delimiter, fmt == "csv"))
        try:
            result = _read_delimited(path, columns, label, is_blank, delimiter)
            proof.result()
        except (Unproven, pa.ArrowException, OSError):
            return None
    return result if result.rows else None

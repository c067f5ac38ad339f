"""JSON Lines checked a byte range at a time, in this process or in a helper process beside it.

orjson holds the GIL, so a second core only helps a large file from a second process. This module
imports nothing but orjson and what Python itself loads at start (not `platforms.datasets`, whose
imports take half a second, nor the site module), so that the helper (`command`) is ready in ~40 ms,
half of it orjson's own import. It is started by the caller through `subprocess` (fork and exec),
which is safe from a multi-threaded bot or RQ worker, where a bare fork is not.

A range holds the lines that start inside it, so ranges cut anywhere share no line and miss none.
Neither side words an error: any doubt ends the scan, and the row reader, reading the whole file
again, names the line. The row reader's own tests are not copied here: values are parsed by the same
orjson; a value that might be blank (text of at most `SHORT_VALUE_BYTES` once stripped, or not text)
goes to the caller's `judge`, which applies `is_blank`; a missing column goes to the caller's
`lookup`, or ends the scan where there is none (the helper has none).

The helper and its caller share out the file's chunks (`CHUNK_BYTES`) from both ends: the caller
takes them from the front, the helper from the back, each telling the other before it starts one, so
a helper that starts late or shares its core with a neighbour leaves more to the caller, never less.
Where they meet, both may count a chunk; the caller keeps its own count of it.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter

import orjson

# Lines are read in batches of about this many bytes: big enough for the checks over a batch to be
# loops in C, small enough that a batch's parsed rows stay in the CPU's caches.
BATCH_BYTES = 1 << 18
READ_BYTES = 1 << 20
# The unit the two processes share out (`chunk`): a few milliseconds of work each.
CHUNK_BYTES = 4 << 20
# A value is blank when its stripped text is empty or a marker such as "none"; such text is at most
# this many bytes, so longer stripped text needs no judging.
SHORT_VALUE_BYTES = 16
# Distinct values waiting for the judge are handed over once there are this many: memory stays flat.
SUSPECTS_HELD = 4096
# A claim travels from the caller to the helper as this many bytes (a chunk's index).
CLAIM_BYTES = 4

_BOM = b"\xef\xbb\xbf"
_STRUCTURED = {dict, list}

Lookup = Callable[[dict, str], tuple[bool, object]]


class Unproven(Exception):
    """This file is outside what the fast path can vouch for: the row reader must read it."""


class Tally:
    """What the scanned lines hold: rows, the label column's counts (by `str(value)`, as the row
    reader counts them) and the distinct values still to be judged."""

    def __init__(self, judge: Callable[[set], None], lookup: Lookup | None = None):
        self.judge, self.lookup = judge, lookup
        self.rows = 0
        self.labels: Counter[str] = Counter()
        self.suspects: set = set()

    def flush(self) -> None:
        if self.suspects:
            self.judge(self.suspects)
            self.suspects = set()

    def add(self, lines: list[bytes], columns: Sequence[str], label: str | None) -> None:
        """Check a batch of lines: each is blank or one JSON object holding every column as a value
        that is not a list or an object. The checks run over the whole batch, in C where they can."""
        try:
            rows = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            try:
                rows = [orjson.loads(line) for line in lines if not line.isspace()]
            except orjson.JSONDecodeError:
                raise Unproven("not one JSON value") from None
            if not rows:
                return
        if not columns and {*map(type, rows)} != {dict}:
            raise Unproven("not an object")
        for column in columns:
            values = self._column(rows, column)
            try:
                stripped = list(map(str.strip, values))  # a TypeError unless every value is text
            except TypeError:
                kinds = {*map(type, values)}
                if kinds & _STRUCTURED:
                    raise Unproven(f"a structured {column}") from None
                self.suspects.update(value for value in values
                                     if type(value) is not str or len(value.strip()) <= SHORT_VALUE_BYTES)
                if column == label:
                    self.labels.update(map(str, values))
                continue
            if min(map(len, stripped)) <= SHORT_VALUE_BYTES:
                if max(map(len, stripped)) <= SHORT_VALUE_BYTES:
                    self.suspects.update(values)
                else:
                    self.suspects.update(value for value, text in zip(values, stripped, strict=True)
                                         if len(text) <= SHORT_VALUE_BYTES)
            if column == label:
                self.labels.update(values)
        if len(self.suspects) >= SUSPECTS_HELD:
            self.flush()
        self.rows += len(rows)

    def _column(self, rows: list[dict], column: str) -> list:
        """The column's values. Indexing by a name fails with a TypeError on any JSON value but an
        object, so no separate test for objects is needed."""
        try:
            return list(map(itemgetter(column), rows))
        except TypeError:
            raise Unproven("not an object") from None
        except KeyError:
            pass
        if {*map(type, rows)} != {dict}:
            raise Unproven("not an object")
        return [row[column] if column in row else self._looked_up(row, column) for row in rows]

    def _looked_up(self, row: dict, column: str) -> object:
        found, value = self.lookup(row, column) if self.lookup is not None else (False, None)
        if not found:
            raise Unproven(f"no {column}")
        return value


def _first_line(handle, start: int, limit: int) -> tuple[int, list[bytes]]:
    """Where the range's first line starts, and the file's first line (its byte order mark
    dropped, as the row reader drops it) when the range starts the file."""
    if start == 0:
        first = handle.readline(limit + 1)
        return len(first), [first.removeprefix(_BOM)] if first else []
    handle.seek(start - 1)
    skipped = handle.readline(limit + 1)
    if len(skipped) > limit:
        raise Unproven("a line over the row reader's limit")
    return start - 1 + len(skipped), []


def scan_range(path: str | os.PathLike[str], start: int, end: int, columns: Sequence[str], label: str | None,
               limit: int, tally: Tally) -> None:
    """Add to `tally` the lines that start at a byte in [start, end); raises Unproven on any doubt.
    `label`, when given, is one of `columns`."""
    if start >= end:
        return
    with open(path, "rb", buffering=READ_BYTES) as handle:
        position, lines = _first_line(handle, start, limit)
        while True:
            if max(map(len, lines), default=0) > limit:
                raise Unproven("a line over the row reader's limit")
            if lines:
                tally.add(lines, columns, label)
            if position >= end:
                break
            # readlines(hint) stops after the line that takes it past `hint` bytes, so the last line
            # read is the one holding byte end - 1; a hint of 0 would read to the end of the file.
            hint = end - position - 1
            lines = handle.readlines(min(hint, BATCH_BYTES)) if hint else [handle.readline()]
            if not lines or not lines[-1]:
                break
            position += sum(map(len, lines))
    tally.flush()


def chunk(index: int, size: int, step: int) -> tuple[int, int]:
    return index * step, min((index + 1) * step, size)


def chunks(size: int, step: int) -> int:
    return -(-size // step)


def command(path: str, size: int, step: int, columns: Sequence[str], label: str | None, limit: int) -> list[str]:
    """The helper's command line: no site module (whose import hooks take ~20 ms), and on its path
    only this project and orjson's folder."""
    folders = [os.path.dirname(os.path.dirname(os.path.abspath(module.__file__)))
               for module in (sys.modules[__name__], orjson)]
    request = orjson.dumps([path, size, step, list(columns), label, limit]).decode()
    return [sys.executable, "-I", "-S", "-c",
            f"import sys; sys.path[:0] = {folders!r}; from platforms.linescan import serve; serve()", request]


def serve() -> None:
    """The helper: take chunks from the back of the file until they meet the caller's claims (read
    from stdin, never waited for), writing each claim, each chunk's count and each batch of values to
    judge to stdout with `marshal` (which Python loads at start; pickle takes 9 ms). An unproven
    chunk ends it."""
    path, size, step, columns, label, limit = orjson.loads(sys.argv[1])
    out = sys.stdout.buffer

    def send(*frame: object) -> None:
        marshal.dump(frame, out)
        out.flush()

    os.set_blocking(0, False)
    theirs = -1
    for index in reversed(range(chunks(size, step))):
        try:
            claims = os.read(0, 1 << 16)
        except BlockingIOError:
            claims = None
        if claims == b"":
            break  # the caller is done
        if claims:
            theirs = int.from_bytes(claims[-CLAIM_BYTES:], "little")
        if index <= theirs:
            break
        send("claim", index)
        tally = Tally(judge=lambda values: send("suspects", values))
        try:
            scan_range(path, *chunk(index, size, step), columns, label, limit, tally)
        except (Unproven, OSError) as exc:
            send("unproven", str(exc))
            return
        send("chunk", index, tally.rows, dict(tally.labels))
    send("done")


if __name__ == "__main__":
    serve()

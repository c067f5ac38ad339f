"""Model inputs as users give them: `try` text, and the request bodies Azure ML endpoints accept.

`try` and the local endpoint turn what they are given into the same rows, dicts keyed by the
task's input keys, which every local task module's predictor takes:

    text-classification   {"sentence1", "sentence2"?}     question-answering  {"question", "context"}
    token-classification  {"text"} or {"tokens"}           summarization       {"document"}
    translation           {"source"}                       fill-mask           {"text"}
    text-generation / chat-completion   {"prompt"} or {"messages": [{"role", "content"}, ...]}

Request bodies follow Azure ML's managed online endpoints, so a client written for Azure scores a
local endpoint unchanged: `{"input_data": ...}` as a list, as `{"input_string": [...],
"parameters": {...}}`, as pandas split orient `{"columns", "index", "data"}` or as `{"data": [...]}`
(content safety); a chat as an `input_string` of role/content messages; and the older
`{"inputs": ...}` with `input_string` lists, `question`/`context` lists, or BERT-style
`[CLS] a [SEP] b [SEP]` sentence pairs.
"""

from __future__ import annotations

import json
from typing import Any

from platforms.tasks import CLASSIFICATION_TASKS, Task

MAX_ROWS = 1024

INPUT_KEYS: dict[Task, tuple[str, ...]] = {
    Task.TEXT_CLASSIFICATION: ("sentence1", "sentence2"),
    Task.TEXT_CLASSIFICATION_MULTILABEL: ("sentence1", "sentence2"),
    Task.TOKEN_CLASSIFICATION: ("text", "tokens"),
    Task.QUESTION_ANSWERING: ("question", "context"),
    Task.SUMMARIZATION: ("document",),
    Task.TRANSLATION: ("source",),
    Task.TEXT_GENERATION: ("prompt", "messages"),
    Task.CHAT_COMPLETION: ("messages", "prompt"),
    Task.FILL_MASK: ("text",),
}
# Tasks whose input is two texts, and the keys they go to (in order).
PAIRS: dict[Task, tuple[str, str]] = {
    Task.TEXT_CLASSIFICATION: ("sentence1", "sentence2"),
    Task.TEXT_CLASSIFICATION_MULTILABEL: ("sentence1", "sentence2"),
    Task.QUESTION_ANSWERING: ("question", "context"),
}
# Column names clients commonly send, read as the task's first (or second) input.
FIRST_ALIASES = ("text", "input_string", "input", "inputs", "sentence", "premise")
SECOND_ALIASES = ("text_pair", "hypothesis")
MAX_TEXT_CHARS = 50_000  # one input text; far beyond any model's context, and bounded parsing work
SHAPES = ('{"input_data": [...]}, {"input_data": {"input_string": [...]}}, '
          '{"input_data": {"columns": [...], "data": [[...]]}}, {"input_data": {"data": [...]}} '
          'or {"inputs": {"input_string": [...]}}')


class InputError(ValueError):
    """Input that cannot be read for the task; the message says what shape was expected."""


def _keys(task: Task) -> tuple[str, ...]:
    keys = INPUT_KEYS.get(task)
    if keys is None:
        raise InputError(f"{task} takes an image, not text; the local platform serves text tasks only")
    return keys


def _is_conversation(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def _bert_pair(text: str) -> tuple[str, str] | None:
    """`[CLS] A [SEP] B [SEP]` as (A, B): found with string searches, in time linear in the text
    (a lazy regex over repeated `[SEP]`s is quadratic in them)."""
    text = text.strip()
    if not (text.startswith("[CLS]") and text.endswith("[SEP]")) or len(text) < 15:
        return None
    first, sep, second = text[5:-5].partition("[SEP]")
    return (first.strip(), second.strip()) if sep else None


def _from_text(task: Task, text: str) -> dict[str, Any]:
    keys = _keys(task)
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the input text is {len(text):,} characters; send at most {MAX_TEXT_CHARS:,}")
    pair = _bert_pair(text)
    if pair and task in PAIRS:
        return dict(zip(PAIRS[task], pair, strict=True))
    if task in PAIRS and task not in CLASSIFICATION_TASKS:
        first, second = PAIRS[task]
        raise InputError(f"{task} needs a {first} and a {second}, not one text")
    if task == Task.CHAT_COMPLETION:
        return {"messages": [{"role": "user", "content": text}]}
    return {keys[0]: text}


def _from_mapping(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    keys = _keys(task)
    first, second = PAIRS.get(task, (keys[0], None))
    known = {key: value for key, value in row.items() if key in keys}
    for alias in FIRST_ALIASES:
        if alias in row and first not in known:
            known[first] = row[alias]
    for alias in SECOND_ALIASES:
        if second and alias in row and second not in known:
            known[second] = row[alias]
    if not known and 1 <= len(row) <= 2:
        return normalize_row(task, list(row.values()) if len(row) == 2 else next(iter(row.values())))
    if not known:
        raise InputError(f"{task} rows need the keys {' / '.join(keys)}; got {', '.join(map(str, row)) or 'none'}")
    if task in PAIRS and task not in CLASSIFICATION_TASKS and not all(k in known for k in PAIRS[task]):
        raise InputError(f"{task} rows need both {' and '.join(PAIRS[task])}")
    return known


def normalize_row(task: Task, value: Any) -> dict[str, Any]:
    """One input row for `task` from a string, a pair, a token list, a conversation or a dict."""
    if isinstance(value, str):
        return _from_text(task, value)
    if isinstance(value, dict):
        return _from_mapping(task, value)
    if _is_conversation(value) and "messages" in _keys(task):
        return {"messages": value}
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) == 2 and task in PAIRS:
            return dict(zip(PAIRS[task], value, strict=True))
        if task == Task.TOKEN_CLASSIFICATION:
            return {"tokens": value}
        if len(value) == 1:
            return _from_text(task, value[0])
    raise InputError(f"cannot read {json.dumps(value)[:80]} as a {task} input")


def text_input(task: Task, text: str) -> dict[str, Any]:
    """What `try` makes of the user's text: a JSON object as is, `A ||| B` as a pair, else one text."""
    text = text.strip()
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"the input is {len(text):,} characters; send at most {MAX_TEXT_CHARS:,}")
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"the input looks like JSON but is not: {exc.msg} at column {exc.colno}") from None
        return normalize_row(task, value)
    if "|||" in text:
        return normalize_row(task, [part.strip() for part in text.split("|||", 1)])
    return normalize_row(task, text)


def _column_rows(data: dict[str, Any]) -> list[Any] | None:
    """`{"question": [...], "context": [...]}`: equal-length columns, zipped into rows."""
    columns = {k: v for k, v in data.items() if k != "parameters"}
    if columns and all(isinstance(v, list) for v in columns.values()):
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InputError(f"the columns {', '.join(columns)} have different lengths")
        return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return None


def _items(data: Any) -> list[Any]:
    if isinstance(data, str):
        return [data]
    if _is_conversation(data):
        return [data]
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise InputError(f"the input must be a list or an object; use {SHAPES}")
    if "columns" in data and "data" in data:
        columns = data["columns"]
        return [dict(zip(columns, row if isinstance(row, list) else [row], strict=False)) for row in data["data"]]
    for key in ("input_string", "data"):
        if key in data:
            return _items(data[key])
    rows = _column_rows(data)
    return rows if rows is not None else [data]


def parse_request(body: Any, task: Task) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and generation parameters from an Azure ML scoring request body."""
    if not isinstance(body, dict) or not ({"input_data", "inputs"} & body.keys()):
        raise InputError(f"the request body must be one of {SHAPES}")
    data = body["input_data"] if "input_data" in body else body["inputs"]
    parameters = dict(body.get("parameters") or body.get("params") or {})
    if isinstance(data, dict):
        parameters.update(data.get("parameters") or {})
    rows = [normalize_row(task, item) for item in _items(data)]
    if not rows:
        raise InputError("the request has no inputs")
    if len(rows) > MAX_ROWS:
        raise InputError(f"the request has {len(rows)} inputs; send at most {MAX_ROWS} per request")
    return rows, parameters

"""Slack's size limits for messages and views, and a checker applied to everything fmbot builds.

Slack rejects a payload that breaks any of these with an opaque `invalid_blocks`; checking in
tests (on every call the Web API stand-in records) finds the builder at fault instead.
"""

from __future__ import annotations

from typing import Any

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
SELECT_OPTIONS = 100
MODAL_TITLE = 24
BUTTON_TEXT = 75
OPTION_TEXT = 75
OPTION_VALUE = 150
PRIVATE_METADATA = 3000
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
FIELD_TEXT = 2000
FIELDS = 10
MESSAGE_TEXT = 40000
# Table blocks (docs.slack.dev/reference/block-kit/blocks/table-block): one per message, at most
# 100 rows of at most 20 cells, at most 20 column settings.
TABLE_ROWS = 100
TABLE_CELLS = 20
TABLES_PER_MESSAGE = 1


def _text(obj: Any) -> str:
    if isinstance(obj, dict):
        return obj.get("text") or ""
    return obj or ""


def _check_element(element: dict[str, Any], where: str, problems: list[str]) -> None:
    kind = element.get("type")
    if kind == "button" and len(_text(element.get("text"))) > BUTTON_TEXT:
        problems.append(f"{where}: button text over {BUTTON_TEXT} chars")
    options = element.get("options") or []
    if len(options) > SELECT_OPTIONS:
        problems.append(f"{where}: {len(options)} options (limit {SELECT_OPTIONS})")
    for option in options + [o for g in element.get("option_groups") or [] for o in g.get("options", [])]:
        if len(_text(option.get("text"))) > OPTION_TEXT:
            problems.append(f"{where}: option text over {OPTION_TEXT} chars")
        if len(option.get("value") or "") > OPTION_VALUE:
            problems.append(f"{where}: option value over {OPTION_VALUE} chars")


def _check_blocks(blocks: list[dict[str, Any]], limit: int, where: str) -> list[str]:
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"{where}: {len(blocks)} blocks (limit {limit})")
    for index, block in enumerate(blocks):
        here = f"{where} block {index} ({block.get('type')})"
        if block.get("type") == "section":
            if len(_text(block.get("text"))) > SECTION_TEXT:
                problems.append(f"{here}: text over {SECTION_TEXT} chars")
            fields = block.get("fields") or []
            if len(fields) > FIELDS or any(len(_text(f)) > FIELD_TEXT for f in fields):
                problems.append(f"{here}: too many or too long fields")
            if block.get("accessory"):
                _check_element(block["accessory"], here, problems)
        elif block.get("type") == "context" and len(block.get("elements") or []) > CONTEXT_ELEMENTS:
            problems.append(f"{here}: over {CONTEXT_ELEMENTS} elements")
        elif block.get("type") == "actions":
            elements = block.get("elements") or []
            if len(elements) > ACTIONS_ELEMENTS:
                problems.append(f"{here}: over {ACTIONS_ELEMENTS} elements")
            for element in elements:
                _check_element(element, here, problems)
        elif block.get("type") == "input":
            _check_element(block.get("element") or {}, here, problems)
        elif block.get("type") == "table":
            rows = block.get("rows") or []
            if not rows or len(rows) > TABLE_ROWS:
                problems.append(f"{here}: {len(rows)} rows (1 to {TABLE_ROWS})")
            if any(len(row) > TABLE_CELLS for row in rows) or len(block.get("column_settings") or []) > TABLE_CELLS:
                problems.append(f"{here}: over {TABLE_CELLS} cells in a row or column settings")
    if sum(block.get("type") == "table" for block in blocks) > TABLES_PER_MESSAGE:
        problems.append(f"{where}: more than {TABLES_PER_MESSAGE} table (only_one_table_allowed)")
    return problems


def message_problems(message: dict[str, Any]) -> list[str]:
    problems = _check_blocks(message.get("blocks") or [], MESSAGE_BLOCKS, "message")
    if len(message.get("text") or "") > MESSAGE_TEXT:
        problems.append(f"message text over {MESSAGE_TEXT} chars")
    return problems


def view_problems(view: dict[str, Any]) -> list[str]:
    problems = _check_blocks(view.get("blocks") or [], VIEW_BLOCKS, f"view {view.get('callback_id', '')}")
    if view.get("type") == "modal":
        for part in ("title", "submit", "close"):
            if len(_text(view.get(part))) > MODAL_TITLE:
                problems.append(f"view {part} over {MODAL_TITLE} chars: {_text(view.get(part))!r}")
    if len(view.get("private_metadata") or "") > PRIVATE_METADATA:
        problems.append(f"private_metadata over {PRIVATE_METADATA} chars")
    return problems


def cut(items: list[Any], limit: int) -> tuple[list[Any], int]:
    """The first `limit` items and how many were left out (for an "and N more" line)."""
    return items[:limit], max(len(items) - limit, 0)


def clip(text: str, limit: int) -> str:
    """Cut long text at a line or word boundary with a visible marker."""
    if len(text) <= limit:
        return text
    head = text[: limit - 40]
    boundary = max(head.rfind("\n"), head.rfind(" "))
    if boundary > limit // 2:
        head = head[:boundary]
    return f"{head}\n… and {len(text) - len(head):,} more characters"

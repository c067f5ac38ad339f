"""The few Adaptive Card 1.5 pieces every Teams view is made of, as plain dicts.

Views return JSON-ready dicts (what the Bot Connector carries), so the tests check exactly what
Teams would receive against the published 1.5 schema.
"""

from __future__ import annotations

from typing import Any

from bot.teams.ids import Verb
from bot.teams.limits import CARD_VERSION, clip

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
Element = dict[str, Any]


def card(body: list[Element], actions: list[Element] | None = None, *, refresh: Element | None = None) -> Element:
    content: Element = {"type": "AdaptiveCard", "$schema": SCHEMA, "version": CARD_VERSION, "body": body}
    if actions:
        content["actions"] = actions
    if refresh:
        content["refresh"] = refresh
    return content


def attachment(content: Element) -> Element:
    return {"contentType": CARD_TYPE, "content": content}


def text(value: str, **style: Any) -> Element:
    return {"type": "TextBlock", "text": clip(value), "wrap": True, **style}


def heading(value: str) -> Element:
    return text(value, weight="Bolder", size="Medium")


def warning(value: str) -> Element:
    return text(f"⚠️ {value}", color="Attention", id="formError")


def facts(pairs: list[tuple[str, str]]) -> Element:
    return {"type": "FactSet", "facts": [{"title": clip(k, 100), "value": clip(v, 400)} for k, v in pairs]}


def execute(title: str, verb: Verb, data: dict[str, Any], *, style: str | None = None) -> Element:
    """A button answered with an `adaptiveCard/action` invoke (Universal Actions)."""
    action: Element = {"type": "Action.Execute", "title": title, "verb": verb, "data": data}
    if style:
        action["style"] = style
    return action


def open_dialog(title: str, data: dict[str, Any]) -> Element:
    """A button that opens a dialog: Teams sends `task/fetch` with `data` (its `verb` routes it)."""
    return {"type": "Action.Submit", "title": title,
            "data": {"msteams": {"type": "task/fetch"}, "verb": Verb.OPEN_FORM, **data}}


def table(header: tuple[str, str], rows: list[tuple[str, str]]) -> Element:
    def row(cells: tuple[str, str], bold: bool = False) -> Element:
        return {"type": "TableRow", "cells": [
            {"type": "TableCell", "items": [text(cell, weight="Bolder") if bold else text(cell)]} for cell in cells]}

    return {"type": "Table", "columns": [{"width": 2}, {"width": 1}], "firstRowAsHeader": True,
            "rows": [row(header, bold=True)] + [row(r) for r in rows]}


def choices(input_id: str, label: str, options: list[tuple[str, str]], *, value: str | None = None,
            required: bool = True, error: str | None = None) -> list[Element]:
    """A select, with the server's complaint about it (if any) right below it."""
    element: Element = {"type": "Input.ChoiceSet", "id": input_id, "label": label, "style": "compact",
                        "isRequired": required, "errorMessage": f"Choose the {label.lower()}",
                        "choices": [{"title": clip(t, 200), "value": v} for t, v in options]}
    if value is not None:
        element["value"] = value
    return [element] + ([text(error, color="Attention", size="Small")] if error else [])


def number(input_id: str, label: str, value: float, *, minimum: float | None = None,
           maximum: float | None = None, error: str | None = None) -> list[Element]:
    element: Element = {"type": "Input.Number", "id": input_id, "label": label, "value": value}
    if minimum is not None:
        element["min"] = minimum
    if maximum is not None:
        element["max"] = maximum
    return [element] + ([text(error, color="Attention", size="Small")] if error else [])


def text_input(input_id: str, label: str, *, placeholder: str = "", value: str = "",
               error: str | None = None, max_length: int | None = None) -> list[Element]:
    element: Element = {"type": "Input.Text", "id": input_id, "label": label, "placeholder": placeholder}
    if value:
        element["value"] = value
    if max_length:
        element["maxLength"] = max_length
    return [element] + ([text(error, color="Attention", size="Small")] if error else [])


def toggle(input_id: str, title: str, *, on: bool) -> list[Element]:
    """A checkbox; Teams sends its value back as the string "true" or "false"."""
    return [{"type": "Input.Toggle", "id": input_id, "title": title, "value": "true" if on else "false",
             "valueOn": "true", "valueOff": "false"}]

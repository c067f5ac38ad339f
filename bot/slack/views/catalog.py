"""Search results and model cards as Block Kit, with the buttons that open each form."""

from __future__ import annotations

import functools
import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
)

from bot.slack.ids import ActionId
from bot.slack.limits import OPTION_TEXT, clip
from platforms.base import ModelCard

PAGE_SIZE = 8


def _summary(card: ModelCard) -> str:
    return f"*{card.name}* `v{card.version}` · {', '.join(card.tasks)} · license {card.license or 'unknown'}"


@functools.lru_cache(maxsize=4096)
def card_buttons(ref: str) -> dict[str, Any]:
    """Cached: validating four buttons costs more than the rest of a search page, and a catalog
    has few models. Callers put the dict in a response as it is and never change it."""
    return ActionsBlock(elements=[
        ButtonElement(text="Try", action_id=ActionId.CARD_TRY, value=ref),
        ButtonElement(text="Evaluate", action_id=ActionId.CARD_EVALUATE, value=ref),
        ButtonElement(text="Fine-tune", action_id=ActionId.CARD_FINETUNE, value=ref),
        ButtonElement(text="Deploy", action_id=ActionId.CARD_DEPLOY, value=ref),
    ]).to_dict()


def _as_dict(block: Any) -> dict[str, Any]:
    return block if isinstance(block, dict) else block.to_dict()


def search_results(cards: list[ModelCard], query: str, task: str | None, page: int = 0) -> dict[str, Any]:
    pages = max(1, -(-len(cards) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = cards[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    title = f"Models matching “{query}”" if query else "Models"
    if task:
        title += f" for {task}"
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(
        text=f"*{title}*: {len(cards)} found" + (f" · page {page + 1} of {pages}" if pages > 1 else "")))]
    if not cards:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="Nothing matches; try fewer words or no task.")))
    for card in shown:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(f"{_summary(card)}\n{card.description}", 600))))
        blocks.append(card_buttons(card.ref))
    if len(shown) >= 2:
        blocks.append(compare_picker(shown))
    if pages > 1:
        nav = []
        state = {"q": query, "t": task}
        if page > 0:
            nav.append(ButtonElement(text="Previous", action_id=f"{ActionId.PAGE}:prev",
                                     value=json.dumps({**state, "p": page - 1})[:2000]))
        if page < pages - 1:
            nav.append(ButtonElement(text="Next", action_id=f"{ActionId.PAGE}:next",
                                     value=json.dumps({**state, "p": page + 1})[:2000]))
        blocks.append(ActionsBlock(elements=nav))
    return {"text": f"{title}: {len(cards)} models", "blocks": [_as_dict(b) for b in blocks]}


def compare_picker(cards: list[ModelCard]) -> ActionsBlock:
    """Tick models of this page, then Compare: the evaluate form opens once for all of them."""
    return ActionsBlock(elements=[
        CheckboxesElement(action_id=ActionId.COMPARE_PICK, options=[
            Option(text=card.ref[:OPTION_TEXT], value=card.ref[:150]) for card in cards]),
        ButtonElement(text="Compare", action_id=ActionId.COMPARE_SELECTED, value="search"),
    ])


def model_card(card: ModelCard) -> dict[str, Any]:
    lines = [_summary(card), card.description]
    if card.base_model:
        lines.append(f"Base model: `{card.base_model}` · trained on {card.training_data or 'unknown data'}")
    if card.metrics:
        lines.append("Metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in list(card.metrics.items())[:8]))
    compute = ", ".join(card.inference_compute) or "any"
    blocks = [
        HeaderBlock(text=clip(card.ref, 150)),
        SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), 3000))),
        ContextBlock(elements=[MarkdownTextObject(
            text=f"source: {card.source or 'catalog'} · inference compute: {compute}"
                 + (f" · fine-tunes for {', '.join(card.finetune_tasks)}" if card.finetune_tasks else "")
                 + (" · serverless API (pay per token)" if card.serverless else "")
                 + (" · shared quota (from Azure ML studio)" if card.shared_quota else ""))]),
        DividerBlock(),
        card_buttons(card.ref),
    ]
    return {"text": f"{card.ref}: {card.description[:100]}", "blocks": [_as_dict(b) for b in blocks]}

"""Model lists and model cards as Block Kit."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ContextBlock, DividerBlock, MarkdownTextObject, SectionBlock

from platforms.base import ModelCard

MAX_MODELS = 20


def _summary(card: ModelCard) -> str:
    tasks = ", ".join(card.tasks)
    return f"*{card.name}* `v{card.version}` · {tasks} · license {card.license or 'unknown'}"


def model_list(cards: list[ModelCard], title: str) -> dict[str, Any]:
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=f"*{title}* ({len(cards)})"))]
    for card in cards[:MAX_MODELS]:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"{_summary(card)}\n{card.description[:200]}")))
    if len(cards) > MAX_MODELS:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"and {len(cards) - MAX_MODELS} more")]))
    return {"text": f"{title}: {len(cards)} models", "blocks": [b.to_dict() for b in blocks]}


def model_card(card: ModelCard) -> dict[str, Any]:
    lines = [_summary(card), card.description[:2500]]
    if card.base_model:
        lines.append(f"Base model: `{card.base_model}` · trained on {card.training_data or 'unknown data'}")
    if card.metrics:
        lines.append("Metrics: " + ", ".join(f"{k} {v:.3f}" for k, v in list(card.metrics.items())[:8]))
    compute = ", ".join(card.inference_compute) or "any"
    blocks = [
        SectionBlock(text=MarkdownTextObject(text="\n".join(lines)[:3000])),
        DividerBlock(),
        ContextBlock(elements=[MarkdownTextObject(text=f"source: {card.source or 'catalog'} · compute: {compute}")]),
    ]
    return {"text": f"{card.ref}: {card.description[:100]}", "blocks": [b.to_dict() for b in blocks]}

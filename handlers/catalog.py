"""`models`, `search` and `card`: reading the model catalog."""

from __future__ import annotations

from handlers.errors import UserError
from platforms.base import ModelCard
from platforms.tasks import Task
from workers.runtime import Runtime


def search_models(rt: Runtime, words: str = "", task: Task | None = None) -> list[ModelCard]:
    """Models whose name, tasks or description hold every word, best name matches first."""
    terms = [w.lower() for w in words.split() if w.strip()]
    found = []
    for card in rt.platform.list_models(task):
        name = card.name.lower()
        haystack = " ".join([name, card.description.lower(), " ".join(card.tasks), card.license or ""])
        if all(term in haystack for term in terms):
            found.append((sum(term not in name for term in terms), name, card))
    return [card for *_, card in sorted(found, key=lambda item: item[:2])]


def require_task(card: ModelCard, task: Task | None, *, served: bool = False) -> Task:
    """`task`, or the model's first task when none is given, refused unless the model supports it."""
    task = task or card.tasks[0]
    if not card.supports(task, served=served):
        raise UserError(card.unsupported(task), hint=f"Its tasks: {', '.join(card.tasks)}")
    return task


def model_card(rt: Runtime, ref: str) -> ModelCard:
    return rt.platform.get_model(ref)

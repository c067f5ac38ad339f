"""Search results and model cards as Adaptive Cards, with the buttons that open each form."""

from __future__ import annotations

from bot.teams.ids import Input, Verb
from bot.teams.views.cards import Element, card, execute, facts, heading, open_dialog, text
from platforms.base import ModelCard

PAGE_SIZE = 8


def _buttons(ref: str) -> list[Element]:
    return [open_dialog("Evaluate", {"kind": "evaluate", "model": ref}),
            open_dialog("Fine-tune", {"kind": "finetune", "model": ref})]


def model_card(model: ModelCard) -> Element:
    pairs = [("Tasks", ", ".join(model.tasks)), ("License", model.license or "unknown"),
             ("Inference compute", ", ".join(model.inference_compute) or "any")]
    if model.base_model:
        pairs.append(("Base model", f"{model.base_model} (trained on {model.training_data or 'unknown data'})"))
    if model.metrics:
        pairs.append(("Metrics", ", ".join(f"{k} {v:.3f}" for k, v in list(model.metrics.items())[:8])))
    body = [heading(model.ref), text(model.description or "No description."), facts(pairs),
            text(f"Try it: `try {model.name} <text>` · deploy it: `deploy {model.name} <endpoint-name>`",
                 isSubtle=True, size="Small")]
    return card(body, _buttons(model.ref) + [open_dialog("Deploy", {"kind": "deploy", "model": model.ref})])


def search_results(models: list[ModelCard], query: str, task: str | None) -> Element:
    title = (f"Models matching “{query}”" if query else "Models") + (f" for {task}" if task else "")
    body: list[Element] = [heading(f"{title}: {len(models)} found")]
    if not models:
        body.append(text("Nothing matches; try fewer words or no task."))
    for model in models[:PAGE_SIZE]:
        body.append({"type": "Container", "separator": True, "items": [
            text(f"**{model.name}** v{model.version} · {', '.join(model.tasks)} · license {model.license or 'unknown'}"),
            text(model.description, isSubtle=True, size="Small", maxLines=3),
            {"type": "ActionSet", "actions": _buttons(model.ref)}]})
    if len(models) > PAGE_SIZE:
        body.append(text(f"and {len(models) - PAGE_SIZE} more: add words or `task:<task>` to narrow the search",
                         isSubtle=True))
    shown = models[:PAGE_SIZE]
    if len(shown) < 2:
        return card(body)
    body.append({"type": "Input.ChoiceSet", "id": Input.COMPARE_MODELS, "label": "Compare on your test data",
                 "isMultiSelect": True, "style": "expanded",
                 "choices": [{"title": f"{m.name} v{m.version}", "value": m.ref} for m in shown]})
    return card(body, [execute("Compare selected", Verb.COMPARE_PICKED, {})])

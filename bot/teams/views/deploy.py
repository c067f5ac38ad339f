"""The deploy and import dialogs as Adaptive Cards 1.5, the same questions as Slack's modals.

Each dialog is one card: what the user filled in comes back with the problem under the input it is
about (`errors`, keyed by input id), so a second try starts from the first. Pure functions.
"""

from __future__ import annotations

from typing import Any

from bot.teams.ids import Input, Verb
from bot.teams.limits import CHOICES
from bot.teams.views.cards import Element, card, choices, heading, number, text, text_input, toggle, warning
from platforms.base import ENDPOINT_NAME_RULE, IMPORT_TASKS, MAX_ENDPOINT_INSTANCES, ComputeOption, ModelCard

DEPLOY_TITLE, IMPORT_TITLE = "Deploy a model", "Import a model"
SERVERLESS, MANAGED = "serverless", "managed"
Errors = dict[str, str]


def _dialog_card(title: str, body: list[Element], submit: Element, errors: Errors) -> Element:
    if "form" in errors:
        body = [warning(errors["form"])] + body
    return card([heading(title)] + body, [submit])


def default_endpoint(model: ModelCard) -> str:
    return model.name.lower().replace("_", "-").replace(".", "-")[:28] + "-ep"


def deploy_dialog(model: ModelCard, options: list[ComputeOption], values: dict[str, Any], errors: Errors) -> Element:
    """Serverless is offered only where the model card says Azure offers the model so."""
    kinds = [("Managed compute (your VM, your instances)", MANAGED)]
    if model.serverless:
        kinds.insert(0, ("Serverless API (pay per token)", SERVERLESS))
    kind = values.get(Input.DEPLOY_KIND) if values.get(Input.DEPLOY_KIND) in {v for _, v in kinds} else None
    shown = options[:CHOICES]
    compute = values.get(Input.COMPUTE) if values.get(Input.COMPUTE) in {o.name for o in shown} else None
    body: list[Element] = [text(f"{model.ref} · {', '.join(model.tasks)}", isSubtle=True)]
    body += choices(Input.DEPLOY_KIND, "How", kinds, value=kind or kinds[0][1], error=errors.get(Input.DEPLOY_KIND))
    body += text_input(Input.ENDPOINT, "Endpoint name", placeholder=ENDPOINT_NAME_RULE, max_length=32,
                       value=str(values.get(Input.ENDPOINT) or default_endpoint(model)),
                       error=errors.get(Input.ENDPOINT))
    body += choices(Input.COMPUTE, "VM size (managed compute)", [(o.label, o.name) for o in shown],
                    value=compute or (shown[0].name if shown else None), required=False,
                    error=errors.get(Input.COMPUTE))
    if len(options) > len(shown):
        body.append(text(f"and {len(options) - len(shown)} more sizes: see `quota`", isSubtle=True))
    body += number(Input.INSTANCES, "Instances (managed compute)", _number(values.get(Input.INSTANCES), 1),
                   minimum=1, maximum=MAX_ENDPOINT_INSTANCES, error=errors.get(Input.INSTANCES))
    body += text_input(Input.TTL, "Time to live", placeholder="8h, 90m, 2d, or never where the policy allows; "
                       "empty for the policy's default", max_length=16, value=str(values.get(Input.TTL) or ""),
                       error=errors.get(Input.TTL))
    if model.serverless:
        body += toggle(Input.CONTENT_FILTER, "Content filtering of prompts and completions (serverless)",
                       on=values.get(Input.CONTENT_FILTER, "true") != "false")
    return _dialog_card(DEPLOY_TITLE, body, {"type": "Action.Submit", "title": "Deploy",
                                             "data": {"verb": Verb.DEPLOY, "model": model.ref}}, errors)


def import_dialog(values: dict[str, Any], errors: Errors) -> Element:
    tasks = [(t.value, t.value) for t in IMPORT_TASKS]
    task = values.get(Input.TASK) if values.get(Input.TASK) in {t for t, _ in tasks} else None
    body = text_input(Input.MODEL_ID, "Hugging Face model id",
                      placeholder="OWNER/NAME, e.g. google-bert/bert-base-uncased",
                      value=str(values.get(Input.MODEL_ID) or ""), error=errors.get(Input.MODEL_ID))
    body += choices(Input.TASK, "Task", tasks, value=task, error=errors.get(Input.TASK))
    body += text_input(Input.LICENSE, "License (optional)", placeholder="Leave empty to read it from the model card",
                       value=str(values.get(Input.LICENSE) or ""), error=errors.get(Input.LICENSE))
    return _dialog_card(IMPORT_TITLE, body, {"type": "Action.Submit", "title": "Import",
                                             "data": {"verb": Verb.IMPORT}}, errors)


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default

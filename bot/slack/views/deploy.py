"""The deploy and import forms, endpoint lists, try results and a deployment's curl example."""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    CheckboxesElement,
    ConfirmObject,
    ContextBlock,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.limits import clip, cut
from bot.slack.views.forms import option
from platforms.base import IMPORT_TASKS, EndpointInfo, ModelCard

SERVERLESS, MANAGED = "serverless", "managed"
MAX_ENDPOINTS = 40


def deploy_modal(card: ModelCard, metadata: str, *, serverless: bool) -> dict[str, Any]:
    kinds = [option("Managed compute (your VM, your instances)", MANAGED)]
    if serverless:
        kinds.insert(0, option("Serverless API (pay per token)", SERVERLESS))
    blocks: list[Any] = [
        SectionBlock(text=MarkdownTextObject(text=f"Deploy *{card.ref}* ({', '.join(card.tasks)})")),
        InputBlock(block_id=BlockId.DEPLOY_KIND, label="How", element=RadioButtonsElement(
            action_id=ActionId.DEPLOY_KIND, options=kinds, initial_option=kinds[0])),
        InputBlock(block_id=BlockId.ENDPOINT_NAME, label="Endpoint or deployment name",
                   hint="3–32 characters: a letter first, then letters, digits or hyphens.",
                   element=PlainTextInputElement(action_id=ActionId.TEXT, max_length=32,
                                                 initial_value=card.name.lower().replace("_", "-")[:28] + "-ep")),
        InputBlock(block_id=BlockId.COMPUTE, label="VM size (managed compute)", optional=True,
                   element=ExternalDataSelectElement(action_id=ActionId.COMPUTE, min_query_length=0)),
        InputBlock(block_id=BlockId.INSTANCES, label="Instances (managed compute)", element=NumberInputElement(
            action_id=ActionId.NUMBER, is_decimal_allowed=False, initial_value="1", min_value="1", max_value="8")),
    ]
    if serverless:
        blocks.append(InputBlock(block_id=BlockId.CONTENT_FILTER, label="Content filtering (serverless)",
                                 optional=True, element=CheckboxesElement(
                                     action_id=ActionId.TEXT, options=[option("Filter prompts and completions", "on")],
                                     initial_options=[option("Filter prompts and completions", "on")])))
    view = View(type="modal", callback_id=CallbackId.DEPLOY, title="Deploy a model", submit="Deploy",
                close="Cancel", private_metadata=metadata, blocks=blocks)
    return view.to_dict()


def import_modal(metadata: str, model_id: str = "", task: str | None = None) -> dict[str, Any]:
    tasks = [option(t.value) for t in IMPORT_TASKS]
    blocks = [
        InputBlock(block_id=BlockId.MODEL_ID, label="Hugging Face model id", hint="OWNER/NAME, e.g. google-bert/bert-base-uncased",
                   element=PlainTextInputElement(action_id=ActionId.TEXT, initial_value=model_id or None)),
        InputBlock(block_id=BlockId.TASK, label="Task", element=StaticSelectElement(
            action_id=ActionId.TASK, options=tasks, initial_option=next((o for o in tasks if o.value == task), None))),
        InputBlock(block_id=BlockId.LICENSE, label="License", optional=True,
                   hint="Leave empty to read it from the model card.",
                   element=PlainTextInputElement(action_id=ActionId.TEXT)),
    ]
    return View(type="modal", callback_id=CallbackId.IMPORT, title="Import a model", submit="Import",
                close="Cancel", private_metadata=metadata, blocks=blocks).to_dict()


def endpoint_list(endpoints: list[EndpointInfo]) -> dict[str, Any]:
    shown, more = cut(endpoints, MAX_ENDPOINTS // 2)
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=f"*Endpoints* ({len(endpoints)})"))]
    if not endpoints:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="No endpoints yet. Deploy one with `/fm deploy`.")))
    for endpoint in shown:
        blocks.append(SectionBlock(
            text=MarkdownTextObject(text=clip(f"*{endpoint.name}* · `{endpoint.model}` · {endpoint.state} · "
                                              f"{endpoint.instances} instance(s)\n{endpoint.url or ''}", 3000)),
            accessory=ButtonElement(text="Show key", action_id=ActionId.SHOW_KEY, value=endpoint.name)))
    if more:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"and {more} more")]))
    return {"text": f"{len(endpoints)} endpoints", "blocks": [b.to_dict() for b in blocks]}


def key_message(endpoint: EndpointInfo, *, rotated: bool = False) -> dict[str, Any]:
    """The key for its owner's eyes only (an ephemeral message); once it was picked up, the offer
    to rotate it instead, since fmbot keeps only its hash."""
    if endpoint.key is None:
        text = (f"The key of *{endpoint.name}* was shown once already; fmbot keeps only its hash, so it cannot "
                "show it again. Rotate it to get a new one: the old key stops working at once.")
        return {"text": text, "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict(),
                                         rotate_key_button(endpoint.name)]}
    what = "New key" if rotated else "Key"
    after = " The old key no longer works." if rotated else ""
    text = (f"{what} of *{endpoint.name}* (only you see this, and only now): `{endpoint.key.get_secret_value()}`"
            f"\nScoring URL: {endpoint.url}.{after}")
    return {"text": text, "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]}


def rotate_key_button(endpoint_name: str) -> dict[str, Any]:
    confirm = ConfirmObject(title="Rotate the key?", text=f"Whoever calls {endpoint_name} with the old key gets "
                            "401 from now on.", confirm="Rotate", deny="Keep it")
    return ActionsBlock(elements=[ButtonElement(text="Rotate key", action_id=ActionId.ROTATE_KEY, value=endpoint_name,
                                                style="danger", confirm=confirm)]).to_dict()


def try_result(result: Any) -> dict[str, Any]:
    source = "the task's sample input" if result.sample_input else "your input"
    lines = [f"*{result.model}* ({result.task}) on {source}, {result.seconds:.2f} s:"]
    for given, output in zip(result.inputs, result.outputs, strict=False):
        lines.append(f"> {clip(json.dumps(given, ensure_ascii=False), 500)}")
        lines.append(f"```{clip(json.dumps(output, ensure_ascii=False, indent=1), 2000)}```")
    text = clip("\n".join(lines), 3000)
    return {"text": text, "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]}


def show_key_button(endpoint_name: str) -> dict[str, Any]:
    return ActionsBlock(elements=[ButtonElement(text="Show key (only to you)", action_id=ActionId.SHOW_KEY,
                                                value=endpoint_name)]).to_dict()

"""The import dialog: a Hugging Face model id, its task (one import supports) and a license.

It opens from `import` without a task; a submit builds the same `ImportSpec` the Slack modal does,
and a refused id, task or license comes back on the dialog under its input.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.hosting.core import TurnContext

from bot.teams.context import TeamsContext, reply_target, require, requester
from bot.teams.forms import closing, dialog
from bot.teams.ids import Input
from bot.teams.views.deploy import IMPORT_TITLE, import_dialog
from bot.teams.views.forms import submitted_values
from handlers.actions import Action
from handlers.imports import ImportRequest, start_import
from platforms.base import ImportSpec
from platforms.errors import FmbotError

# Which input of the import dialog shows an error about each ImportSpec field.
IMPORT_INPUTS = {"model_id": Input.MODEL_ID, "task": Input.TASK, "license": Input.LICENSE}


def open_dialog(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    data = (context.activity.value or {}).get("data") or {}
    try:
        require(context.activity, Action.IMPORT)
    except Exception as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    return dialog(IMPORT_TITLE, import_dialog({Input.MODEL_ID: data.get(Input.MODEL_ID) or ""}, {}))


def submit(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    activity = context.activity
    _, values = submitted_values(activity.value or {})
    try:
        require(activity, Action.IMPORT)
    except Exception as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    try:
        record = start_import(ctx.rt, ImportRequest(
            spec=ImportSpec(model_id=str(values.get(Input.MODEL_ID) or "").strip(), task=values.get(Input.TASK) or "",
                            license=str(values.get(Input.LICENSE) or "").strip() or None),
            requester=requester(activity), reply_to=reply_target(activity)))
    except FmbotError as exc:
        return dialog(IMPORT_TITLE, import_dialog(values, {IMPORT_INPUTS.get(exc.field, Input.MODEL_ID): exc.on_field}))
    return closing(f"Importing {record.model} as job {record.id}: follow it on its card in the chat.")

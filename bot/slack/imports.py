"""`/fm import`: a Hugging Face model into the catalog, from the command line or a small form."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.forms import Refusal, submit_within_budget
from bot.slack.ids import BlockId, CallbackId
from bot.slack.state import FormState, dump_state, load_state
from bot.slack.views.deploy import import_modal
from bot.slack.views.forms import read_values
from handlers.imports import ImportRequest, start_import
from platforms.base import ImportSpec
from platforms.errors import FmbotError
from workers.ledger import ReplyTarget


def command_import(cmd: SlashCommand) -> None:
    """Where the policy limits the size of an import, a hub model is measured on the hub before it
    is recorded, so the answer says it is checking first."""
    rt = cmd.ctx.rt
    model_id, _, task = cmd.rest.partition(" ")
    if model_id and task.strip():
        spec = ImportSpec(model_id=model_id, task=task)

        def start() -> dict[str, str]:
            record = start_import(rt, ImportRequest(spec=spec, requester=cmd.user,
                                                    reply_to=ReplyTarget(channel=cmd.channel)))
            return {"text": f"Importing `{model_id}` as job `{record.id}`; follow it in the channel."}

        cmd.answer_slowly(f"Checking `{model_id}`…", start)
        return
    state = FormState(kind="import", channel=cmd.channel, user=cmd.user)
    cmd.client.views_open(trigger_id=cmd.trigger_id, view=import_modal(dump_state(state, rt.redis), model_id=model_id))


# Which block of the import form shows an error about each ImportSpec field.
IMPORT_BLOCKS = {"model_id": BlockId.MODEL_ID, "task": BlockId.TASK, "license": BlockId.LICENSE}


def on_import(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    state = load_state(view["private_metadata"], ctx.rt.redis)
    values = read_values(view)
    try:
        spec = ImportSpec(model_id=(values.get(BlockId.MODEL_ID) or "").strip(), task=values.get(BlockId.TASK) or "",
                          license=values.get(BlockId.LICENSE))
    except FmbotError as exc:
        ack(response_action="errors", errors={IMPORT_BLOCKS.get(exc.field, BlockId.MODEL_ID): exc.on_field[:150]})
        return
    submit_within_budget(ctx, ack, client, view, state, lambda: _import(ctx, state, spec))


def _import(ctx: SlackContext, state: FormState, spec: ImportSpec) -> Refusal | None:
    try:
        start_import(ctx.rt, ImportRequest(spec=spec, requester=state.user, reply_to=ReplyTarget(channel=state.channel)))
    except FmbotError as exc:
        return {IMPORT_BLOCKS.get(exc.field, BlockId.MODEL_ID): exc.on_field}
    return None


def register(app: App) -> None:
    app.view(CallbackId.IMPORT)(on_import)

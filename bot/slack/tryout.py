"""`/fm try` and the Try button: one prediction, answered only to the person who asked.

Loading a model can take longer than Slack's 3 seconds, so the command acks at once and the
answer follows through the command's response URL (or as an ephemeral message for a button).
"""

from __future__ import annotations


from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.ids import ActionId
from bot.slack.views.deploy import try_result
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint
from handlers.tryout import try_model


def command_try(cmd: SlashCommand) -> None:
    ctx, respond = cmd.ctx, cmd.respond
    model, _, text = cmd.rest.partition(" ")
    if not model:
        raise UserError("say which model to try", hint=usage_hint("try", Surface.SLACK))
    ctx.rt.platform.get_model(model)
    cmd.ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Trying `{model}`…")

    def run() -> None:
        try:
            respond(response_type="ephemeral", replace_original=True, **try_result(try_model(ctx.rt, model, text)))
        except Exception as exc:
            respond(response_type="ephemeral", replace_original=True, text=f":warning: {ctx.explain(exc)}")

    ctx.after_ack(run)


def on_try(ack, body, client, context):
    ack()
    ctx: SlackContext = context["fm"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = body["user"]["id"]
    ctx.after_ack_telling(client, channel, user, lambda: client.chat_postEphemeral(
        channel=channel, user=user, **try_result(try_model(ctx.rt, body["actions"][0]["value"]))))


def register(app: App) -> None:
    app.action(ActionId.CARD_TRY)(on_try)

"""`/fm try` and the Try button: one prediction, answered only to the person who asked.

Loading a model can take longer than Slack's 3 seconds, so the command acks at once and the
answer follows through the command's response URL (or as an ephemeral message for a button).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext
from bot.slack.ids import ActionId
from bot.slack.views.deploy import try_result
from handlers.errors import UserError
from handlers.try_ import try_model


def command_try(ctx: SlackContext, ack: Any, command: dict, rest: str, client: Any, respond: Any) -> None:
    model, _, text = rest.partition(" ")
    if not model:
        raise UserError("say which model to try", hint="Usage: `/fm try <model> [text]`")
    ctx.rt.platform.get_model(model)
    ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Trying `{model}`…")

    def run() -> None:
        try:
            respond(response_type="ephemeral", replace_original=True, **try_result(try_model(ctx.rt, model, text)))
        except Exception as exc:
            respond(response_type="ephemeral", replace_original=True, text=f":warning: {ctx.explain(exc)}")

    ctx.after_ack(run)


def register(app: App, ctx: SlackContext) -> None:
    @app.action(ActionId.CARD_TRY)
    def on_try(ack, body, client):
        ack()
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        user = body["user"]["id"]
        ctx.after_ack_telling(client, channel, user, lambda: client.chat_postEphemeral(
            channel=channel, user=user, **try_result(try_model(ctx.rt, body["actions"][0]["value"]))))

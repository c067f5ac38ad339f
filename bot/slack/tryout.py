"""`/fm try` and the Try button: one prediction, answered only to the person who asked.

The command acks at once, reading nothing (on Azure ML even the catalog is a remote call), and
the answer follows through the command's response URL (or as an ephemeral message for a button)
from the warm try service (handlers/tryout.py); no model is ever loaded in the bot.
"""

from __future__ import annotations


from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.ids import ActionId
from bot.slack.views.deploy import try_result
from bot.slack.views.mrkdwn import escape
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint
from handlers.tryout import try_model


def command_try(cmd: SlashCommand) -> None:
    model, _, text = cmd.rest.partition(" ")
    if not model:
        raise UserError("say which model to try", hint=usage_hint("try", Surface.SLACK))
    cmd.answer_slowly(f"Trying `{escape(model)}`…",
                      lambda: try_result(try_model(cmd.ctx.rt, model, text, requester=cmd.user)))


def on_try(ack, body, client, context):
    ack()
    ctx: SlackContext = context["fm"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = body["user"]["id"]
    ctx.after_ack_telling(client, channel, user, lambda: client.chat_postEphemeral(
        channel=channel, user=user, **try_result(try_model(ctx.rt, body["actions"][0]["value"], requester=user))))


def register(app: App) -> None:
    app.action(ActionId.CARD_TRY)(on_try)

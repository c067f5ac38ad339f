"""Costs in Slack: `/fm costs`, and the Keep button an endpoint's owner gets before its time to live ends."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.ids import ActionId
from bot.slack.views.costs import costs_message
from handlers.costs import costs_report, keep_endpoint, set_digest
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint
from workers.ledger import ReplyTarget


def command_costs(cmd: SlashCommand) -> None:
    """`/fm costs`, or `/fm costs digest on|off` for the channel's cost digest."""
    words = cmd.rest.lower().split()
    if words[:1] == ["digest"]:
        if words[1:] not in (["on"], ["off"]):
            raise UserError("say `digest on` or `digest off`", hint=usage_hint("costs", Surface.SLACK))
        cmd.answer(text=set_digest(cmd.ctx.rt, ReplyTarget(channel=cmd.channel), words[1] == "on"))
        return
    cmd.answer(**costs_message(costs_report(cmd.ctx.rt, cmd.user, cmd.channel)))


def on_keep(ack, body, client, context):
    ctx: SlackContext = context["fm"]
    ack()
    user = body["user"]["id"]
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    name = body["actions"][0]["value"]

    def keep() -> None:
        try:
            held = keep_endpoint(ctx.rt, name, user)
            text = (f":white_check_mark: *{name}* is kept until "
                    f"<!date^{int(held.expires_at.timestamp())}^{{date_short_pretty}} at {{time}}|{held.expires_at:%Y-%m-%d %H:%M} UTC>.")
        except Exception as exc:
            text = f":warning: {ctx.explain(exc)}"
        ctx.tell(client, channel, user, text)
    ctx.after_ack(keep)


def register(app: App) -> None:
    app.action(ActionId.KEEP_ENDPOINT)(on_keep)

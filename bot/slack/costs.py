"""Costs in Slack: `/fm costs`, and the Keep button an endpoint's owner gets before its time to live ends."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.ids import ActionId
from bot.slack.views.costs import costs_message
from handlers.costs import costs_report, keep_endpoint


def command_costs(cmd: SlashCommand) -> None:
    cmd.ack(response_type="ephemeral", **costs_message(costs_report(cmd.ctx.rt, cmd.user, cmd.channel)))


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

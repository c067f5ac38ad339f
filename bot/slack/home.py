"""The App Home tab, published when opened and whenever one of the user's jobs changes state."""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext
from bot.slack.views.home import home_view
from handlers.compare import recent_leaderboards
from handlers.costs import costs_report
from workers.runtime import Runtime


def user_home(rt: Runtime, user: str) -> dict[str, Any]:
    return home_view(rt.ledger.recent(user=user, limit=50), rt.platform.list_endpoints(), costs_report(rt, user),
                     recent_leaderboards(rt))


def on_home_opened(event, client, context):
    ctx: SlackContext = context["fm"]
    if event.get("tab", "home") == "home":
        ctx.after_ack(lambda: client.views_publish(user_id=event["user"], view=user_home(ctx.rt, event["user"])))


def register(app: App) -> None:
    app.event("app_home_opened")(on_home_opened)

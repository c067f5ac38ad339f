"""The Bolt app: one place that wires the listeners of each concern to a shared context.

Listeners stay thin: they read the request, call a handler, and render its typed result with a
view. Slack hears back when a listener returns (`process_before_response`), so anything that may
take long is handed to `SlackContext.after_ack`.
"""

from __future__ import annotations

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk import WebClient

from bot.settings import Settings
from bot.slack import buttons, commands, compare, costs, deploy, forms, home, imports, tryout
from bot.slack.context import SlackContext
from bot.slack.errors import on_error
from bot.slack.middleware import Gate, SlackGroups, settle_delivery
from handlers import policy
from handlers.policy import load_policy
from workers.runtime import Runtime


class FmbotApp(App):
    """Bolt's App, settling each delivery's claim once its listener has run (Bolt's global
    middleware only sees the request before the listener, never after it)."""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        response = super().dispatch(req)
        settle_delivery(req.context, handled=True)
        return response


def install_policy(settings: Settings, client: WebClient) -> None:
    """The access policy, with Slack's user groups behind its group rules (read in the background)."""
    rules, groups = load_policy(settings.fmbot_policy, settings.fmbot_admins.split(",")), SlackGroups(client)
    policy.install(rules, groups)
    if rules.mentions_groups:
        groups.refresh_in_background()


def create_app(settings: Settings, rt: Runtime, client: WebClient, *, verify_requests: bool = True) -> App:
    """`verify_requests` is off only for Socket Mode, whose messages come over an authenticated socket."""
    app = FmbotApp(
        client=client,
        signing_secret=settings.secret(settings.slack_signing_secret) or "",
        token_verification_enabled=False,
        request_verification_enabled=verify_requests,
        process_before_response=True,
    )
    install_policy(settings, client)
    app.use(Gate(rt.redis, SlackContext(settings=settings, rt=rt)))
    app.error(on_error)
    for room in (commands, forms, buttons, home, deploy, imports, tryout, costs, compare):
        room.register(app)
    return app

"""`fmbot serve`: the Slack app over HTTP (waitress) or Socket Mode."""

from __future__ import annotations

import logging
import threading

from bot.observability import Readiness
from bot.wsgi import make_server, wsgi_app
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import web_client
from handlers.errors import UserError
from workers.queues import persistence_warning
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def serve(settings: Settings, rt: Runtime, *, host: str, port: int, socket_mode: bool) -> int:
    if settings.slack_bot_token is None:
        raise UserError("SLACK_BOT_TOKEN is not set", hint="Put the bot token (xoxb-...) in the environment or .env")
    client = web_client(settings)
    if warning := persistence_warning(rt.redis):
        log.warning(warning)
    if socket_mode:
        if settings.slack_app_token is None:
            raise UserError("Socket Mode needs SLACK_APP_TOKEN", hint="Create an app-level token with connections:write")
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        app = create_app(settings, rt, client, verify_requests=False)
        health = make_server(wsgi_app(None, Readiness.from_settings(settings, client)), host, port,
                             threads=settings.fmbot_http_threads)
        threading.Thread(target=health.run, name="fmbot-health", daemon=True).start()
        log.info("fmbot in Socket Mode; /healthz, /readyz, /metrics on http://%s:%s", host, health.effective_port)
        SocketModeHandler(app, settings.secret(settings.slack_app_token)).start()
        return 0
    if settings.slack_signing_secret is None:
        raise UserError("SLACK_SIGNING_SECRET is not set", hint="Every HTTP request from Slack is verified with it")
    # Readiness and metrics tell an outsider about Redis, Slack and every job; they get a port of their own.
    internal = make_server(wsgi_app(None, Readiness.from_settings(settings, client)), host,
                           settings.fmbot_internal_port, threads=2)
    threading.Thread(target=internal.run, name="fmbot-internal", daemon=True).start()
    server = make_server(wsgi_app(create_app(settings, rt, client)), host, port, threads=settings.fmbot_http_threads)
    log.info("fmbot serving Slack on http://%s:%s/slack/events; /readyz and /metrics on port %s", host,
             server.effective_port, internal.effective_port)
    server.run()
    return 0

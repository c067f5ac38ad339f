"""`fmbot serve`: the Slack app over HTTP (waitress) or Socket Mode, and its command answerer."""

from __future__ import annotations

import logging
import os
import threading

from redis import Redis

from bot.observability import Readiness
from bot.slack.answerer import answerer_id, lapse
from bot.wsgi import make_server, wsgi_app
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import web_client
from handlers.errors import UserError
from workers.queues import persistence_warning
from workers.runtime import Runtime

log = logging.getLogger(__name__)
# An answer is 1-10 ms of CPU: at nice 10 beside two busy training processes it still gets about a
# tenth of a core, tens of answers a second, while acks are never queued behind one.
ANSWERER_NICE = 10


def run_answerer(settings: Settings) -> None:
    """The answerer's life: a runtime, Slack client and access policy of its own, answering until
    killed, at a lower priority than the bot (`ANSWERER_NICE`): on a busy machine an ack takes a
    core from an answer being rendered, not the other way round."""
    os.nice(ANSWERER_NICE)
    from slack_bolt.context.respond import Respond

    from bot.bootstrap import build_runtime
    from bot.slack.answerer import Answerer
    from bot.slack.app import install_policy
    from bot.slack.commands import answer
    from bot.slack.context import SlackContext

    rt, client = build_runtime(settings), web_client(settings)
    install_policy(settings, client)
    ctx = SlackContext(settings=settings, rt=rt)
    Answerer(rt.redis, lambda delivery: answer(ctx, delivery, client,
                                               Respond(response_url=delivery.get("response_url")))).serve()


def start_answerer(settings: Settings) -> int | None:
    """Fork the command answerer (bot/slack/answerer.py) before the bot starts any thread; returns
    its pid, or None when FMBOT_SLACK_ANSWERER is off. It dies with the bot."""
    if not settings.fmbot_slack_answerer:
        return None
    from bot.worker import fork_beside

    return fork_beside(lambda: run_answerer(settings), "Slack answerer")


def watch_answerer(redis: Redis, pid: int) -> None:
    """When the answerer dies, the bot answers from then on (what it held first) instead of
    handing commands to it until its heartbeat runs out."""
    _, status = os.waitpid(pid, 0)
    log.error("the Slack answerer (pid %d) died with status %d; the bot answers commands itself from now on",
              pid, status)
    lapse(redis, answerer_id(pid))


def serve(settings: Settings, rt: Runtime, *, host: str, port: int, socket_mode: bool) -> int:
    if settings.slack_bot_token is None:
        raise UserError("SLACK_BOT_TOKEN is not set", hint="Put the bot token (xoxb-...) in the environment or .env")
    answerer = start_answerer(settings)
    if answerer is not None:
        threading.Thread(target=watch_answerer, args=(rt.redis, answerer), name="fmbot-answerer-watch",
                         daemon=True).start()
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

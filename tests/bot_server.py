"""The bot's HTTP endpoint served in-process on a free port, as `fmbot serve` serves it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from slack_bolt import App

from bot.bootstrap import build_runtime
from bot.wsgi import make_server, wsgi_app
from bot.settings import Settings
from bot.slack.app import create_app
from bot.slack.client import web_client


class BotServer:
    def __init__(self, settings: Settings, extend: Callable[[App], None] | None = None):
        """`extend` registers more listeners on the app (a test's own, after fmbot's)."""
        self.runtime = build_runtime(settings)
        app = create_app(settings, self.runtime, web_client(settings))
        if extend is not None:
            extend(app)
        self.server = make_server(wsgi_app(app), "127.0.0.1", 0, threads=settings.fmbot_http_threads)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}/slack/events"

    def close(self) -> None:
        """Empty waitress's socket map first so its loop exits, then close the sockets."""
        sockets = list(self.server._map.values())
        self.server._map.clear()
        self.thread.join(timeout=5)
        for channel in sockets:
            channel.close()
        self.server.task_dispatcher.shutdown()

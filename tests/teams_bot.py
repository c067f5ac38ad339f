"""The Teams app served in-process on a free port, as `fmbot serve --teams` serves it (aiohttp)."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from bot.bootstrap import build_runtime
from bot.settings import Settings
from bot.teams.app import create_app


class TeamsBotServer:
    def __init__(self, settings: Settings, *, dev: bool = False, **options):
        self.runtime = build_runtime(settings)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(create_app(settings, self.runtime, dev=dev, **options))
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            self.site = web.TCPSite(self.runner, "127.0.0.1", 0)
            self.loop.run_until_complete(self.site.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(10)

    @property
    def url(self) -> str:
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/api/messages"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

"""`fmbot serve --teams`: the Teams app over HTTP (aiohttp, as the SDK hosts it) at /api/messages."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.settings import Settings
from bot.teams.app import create_app
from bot.teams.connections import credentials_problem
from handlers.errors import UserError
from workers.queues import persistence_warning
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def serve_teams(settings: Settings, rt: Runtime, *, host: str, port: int, dev: bool) -> int:
    """Refuses to start without credentials, unless `dev` (no token checks: Agents Playground only)."""
    problem = credentials_problem(settings)
    if problem and not dev:
        raise UserError(f"Teams needs the bot's credentials: {problem}",
                        hint="Set TEAMS_APP_ID and TEAMS_APP_SECRET (or a managed identity), or pass --dev to try "
                             "fmbot in the Agents Playground without them")
    if dev:
        log.warning("Teams dev mode: requests to /api/messages are NOT authenticated; never expose this port")
    if warning := persistence_warning(rt.redis):
        log.warning(warning)
    log.info("fmbot serving Teams on http://%s:%s/api/messages", host, port)
    web.run_app(create_app(settings, rt, dev=dev), host=host, port=port, print=None)
    return 0

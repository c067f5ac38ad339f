"""The Teams app: the SDK's aiohttp hosting at `/api/messages`, routed to fmbot's Teams rooms.

Messages go to `commands`, dialogs (`task/fetch`, `task/submit`) to `forms`, Adaptive Card
`Action.Execute` invokes (`adaptiveCard/action`) to `actions`, a file consent card's answer
(`fileConsent/invoke`) to `consent`. Every request's token is checked
by `auth.middleware` before the SDK sees it; every activity refreshes the stored conversation
reference the worker posts job cards with.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from microsoft_agents.hosting.core import AgentApplication, MemoryStorage, RouteRank, TurnContext, TurnState
from microsoft_agents.hosting.msteams.file_consent import FileConsent
from microsoft_agents.hosting.msteams.task_module import TaskModule
from microsoft_teams.api.models import FileConsentCardResponse

from bot.settings import Settings
from bot.teams import actions, auth, commands, consent, conversations, deploy, forms, imports
from bot.teams.connections import cloud_adapter, connection_manager, credentials_problem
from bot.teams.graph import GraphGroups, entra_group_ids, graph_token
from bot.teams.context import TeamsContext
from bot.teams.ids import Verb
from bot.teams.limits import INVOKE_BUDGET_SECONDS
from bot.teams.views.deploy import DEPLOY_TITLE, IMPORT_TITLE
from handlers import policy
from handlers.policy import load_policy
from workers.runtime import Runtime

log = logging.getLogger(__name__)


# Dialogs other than the step-by-step job forms (`forms`): by the `kind` a button opens, and by the
# verb their card submits.
OPENERS = {"deploy": deploy.open_dialog, "import": imports.open_dialog}
# Each one-card dialog's submit, its title and what its "checking…" card says it checks.
SUBMITS = {Verb.DEPLOY: (deploy.submit, DEPLOY_TITLE, "quota and the endpoints there already"),
           Verb.IMPORT: (imports.submit, IMPORT_TITLE, "the model on the Hugging Face hub")}


def create_app(settings: Settings, rt: Runtime, *, dev: bool = False,
               invoke_budget: float = INVOKE_BUDGET_SECONDS) -> web.Application:
    """`dev` runs without token checks (the SDK's anonymous mode); otherwise the app id is required.
    `invoke_budget`: how long a dialog step may take before it answers "checking…" instead."""
    rules = load_policy(settings.fmbot_policy, settings.fmbot_admins.split(","))
    manager = connection_manager(settings)
    token = graph_token(manager, settings.teams_graph_url) if credentials_problem(settings) is None else None
    policy.install(rules, GraphGroups(settings.teams_graph_url, token, entra_group_ids(rules.groups)))
    adapter = cloud_adapter(manager)
    agent = AgentApplication[TurnState](storage=MemoryStorage(), connection_manager=manager)
    ctx = TeamsContext(settings, rt, invoke_budget=invoke_budget)

    @agent.before_turn
    async def remember(context: TurnContext, state: TurnState) -> bool:
        await ctx.blocking(conversations.remember, rt.redis, context.activity)
        return True

    @agent.activity("message")
    async def on_message(context: TurnContext, state: TurnState) -> None:
        await commands.on_message(ctx, context)

    @agent.adaptive_card.action_execute(re.compile(".*"))
    async def on_execute(context: TurnContext, state: TurnState, data: dict):
        return await actions.on_execute(ctx, context, data)

    dialogs = TaskModule(agent)

    @dialogs.fetch()
    async def on_fetch(context: TurnContext, state: TurnState, request):
        kind = ((context.activity.value or {}).get("data") or {}).get("kind")
        if kind in OPENERS:
            return await ctx.blocking(OPENERS[kind], ctx, context)
        return await forms.on_fetch(ctx, context)

    @dialogs.submit()
    async def on_submit(context: TurnContext, state: TurnState, request):
        verb = ((context.activity.value or {}).get("data") or {}).get("verb")
        if verb in SUBMITS:
            submit, dialog_title, what = SUBMITS[verb]
            return await forms.dialog_within_budget(ctx, context, dialog_title, what, lambda: submit(ctx, context))
        return await forms.on_submit(ctx, context)

    files = FileConsent(agent)
    agent.add_route(consent.unreadable, consent.refuse_unreadable, is_invoke=True, rank=RouteRank.FIRST)

    @files.accept()
    async def on_accept(context: TurnContext, state: TurnState, answer: FileConsentCardResponse) -> None:
        await consent.reply(ctx, context, consent.accepted, answer.context, answer.upload_info)

    @files.decline()
    async def on_decline(context: TurnContext, state: TurnState, answer: FileConsentCardResponse) -> None:
        await consent.reply(ctx, context, consent.declined, answer.context)

    @agent.error
    async def on_error(context: TurnContext, error: Exception) -> None:
        log.error("Teams turn failed", exc_info=error)

    validator = None if dev else auth.TeamsTokenValidator(settings.teams_app_id, settings.teams_openid_metadata_url)
    app = web.Application(middlewares=[auth.middleware(validator)], client_max_size=1024 * 1024)

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, agent)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", healthz)
    return app

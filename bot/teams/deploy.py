"""The deploy dialog: model, endpoint name, serverless or managed compute (VM size, instances), time to live.

It opens from a model card's Deploy button or `deploy <model>`; a submit builds the same
`DeploySpec` the Slack modal does, and any problem (an endpoint name Azure refuses, too many
instances, no VM size, no quota) comes back on the dialog under its input.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.hosting.core import TurnContext

from bot.teams.context import TeamsContext, reply_target, require, requester
from bot.teams.forms import closing, dialog, quota_error
from bot.teams.ids import Input
from bot.teams.views.deploy import DEPLOY_TITLE, SERVERLESS, deploy_dialog
from bot.teams.views.forms import submitted_values
from handlers import deploy as deploy_handlers
from handlers.actions import Action
from handlers.costs import parse_ttl
from handlers.errors import UserError
from platforms.base import DeploySpec, ModelCard
from platforms.errors import FmbotError

# Which input of the deploy dialog shows an error about each DeploySpec field.
DEPLOY_INPUTS = {"endpoint": Input.ENDPOINT, "instances": Input.INSTANCES, "compute": Input.COMPUTE,
                 "ttl": Input.TTL}


def _show(ctx: TeamsContext, model: ModelCard, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    options = ctx.rt.platform.compute_options("deploy", model=model)
    return dialog(DEPLOY_TITLE, deploy_dialog(model, options, values, errors))


def open_dialog(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    data = (context.activity.value or {}).get("data") or {}
    try:
        require(context.activity, Action.DEPLOY)
        return _show(ctx, ctx.rt.platform.get_model(str(data.get("model") or "")), {}, {})
    except Exception as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")


def submit(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    activity, rt = context.activity, ctx.rt
    _, values = submitted_values(activity.value or {})
    try:
        require(activity, Action.DEPLOY)
        model = rt.platform.get_model(str(values.pop(Input.MODEL, "") or ""))
    except Exception as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    serverless = model.serverless and values.get(Input.DEPLOY_KIND) == SERVERLESS
    try:
        ttl = str(values.get(Input.TTL) or "").strip()
        spec = DeploySpec(model=model.ref, endpoint=str(values.get(Input.ENDPOINT) or "").strip(),
                          instances=values.get(Input.INSTANCES) or 1, compute=values.get(Input.COMPUTE) or None,
                          serverless=serverless, content_filtering=values.get(Input.CONTENT_FILTER) != "false",
                          ttl_hours=parse_ttl(ttl) if ttl else None)
        if not serverless and not spec.compute:
            raise UserError("Choose a VM size for managed compute", field="compute")
    except FmbotError as exc:
        return _show(ctx, model, values, {DEPLOY_INPUTS.get(exc.field, Input.ENDPOINT): exc.on_field})
    if not serverless:
        check = rt.platform.check_quota(spec.compute, spec.instances, model=model, deployment=True)
        if not check.ok:
            return _show(ctx, model, values, quota_error(check))
    try:
        record = deploy_handlers.start_deploy(rt, deploy_handlers.DeployRequest(
            spec=spec, requester=requester(activity), reply_to=reply_target(activity)))
    except FmbotError as exc:
        return _show(ctx, model, values, {DEPLOY_INPUTS.get(exc.field, "form"): ctx.explain(exc)})
    return closing(f"Deploying {record.model} to {spec.endpoint}: follow {record.id} on its card in the chat.")

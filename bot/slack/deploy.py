"""Deploying from Slack: the deploy form, `/fm endpoints`, keys shown only to their owner, rotation, deletes.

The channel sees an endpoint's URL and a ready-to-paste curl example; the key goes only to the
person who deployed it, as an ephemeral message when they press **Show key** (once: then the
message offers **Rotate key**); `/fm rotate-key` and that button send the new key the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.forms import Refusal, quota_errors, submit_within_budget
from bot.slack.home import user_home
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.state import FormState, dump_state, load_state
from bot.slack.views.deploy import SERVERLESS, deploy_modal, endpoint_list, key_message
from bot.slack.views.forms import read_values
from handlers import deploy as deploy_handlers
from handlers import policy
from handlers.costs import form_estimates, parse_ttl, resolve_ttl
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint
from platforms.base import DeploySpec
from platforms.errors import FmbotError
from workers.ledger import ReplyTarget


def open_deploy(ctx: SlackContext, client: Any, trigger_id: str, channel: str, user: str, model: str) -> None:
    rt = ctx.rt
    card = rt.platform.get_model(model)
    state = FormState(kind="deploy", channel=channel, user=user, model=card.ref)
    actor = policy.actor(user, channel)
    estimates = form_estimates(rt, "deploy", card, actor=actor)
    if card.serverless:
        estimates = form_estimates(rt, "deploy", card, serverless=True) + estimates
    client.views_open(trigger_id=trigger_id, view=deploy_modal(card, dump_state(state, rt.redis),
                                                              serverless=card.serverless, estimates=estimates,
                                                              ttl_hours=resolve_ttl(rt, actor, None)))


def command_deploy(cmd: SlashCommand) -> None:
    if not cmd.rest:
        raise UserError("say which model to deploy",
                        hint=f"{usage_hint('deploy', Surface.SLACK)}, or use a card's Deploy button")
    cmd.ctx.rt.platform.get_model(cmd.rest)
    open_deploy(cmd.ctx, cmd.client, cmd.trigger_id, cmd.channel, cmd.user, cmd.rest)


def command_endpoints(cmd: SlashCommand) -> None:
    """Listing probes each endpoint's health (and is a remote call on Azure ML): after the ack."""
    cmd.answer_slowly("Checking your endpoints…", lambda: endpoint_list(deploy_handlers.list_endpoints(cmd.ctx.rt)))


# Which block of the deploy form shows an error about each DeploySpec field.
DEPLOY_BLOCKS = {"endpoint": BlockId.ENDPOINT_NAME, "instances": BlockId.INSTANCES, "compute": BlockId.COMPUTE,
                 "ttl": BlockId.TTL}


def on_deploy(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    state = load_state(view["private_metadata"], rt.redis)
    values = read_values(view)
    try:
        ttl = parse_ttl(values[BlockId.TTL]) if values.get(BlockId.TTL) else None
    except UserError as exc:
        ack(response_action="errors", errors={BlockId.TTL: ctx.explain(exc)[:150]})
        return
    serverless = values.get(BlockId.DEPLOY_KIND) == SERVERLESS
    try:
        spec = DeploySpec(model=state.model, endpoint=(values.get(BlockId.ENDPOINT_NAME) or "").strip(),
                          instances=values.get(BlockId.INSTANCES) or 1, compute=values.get(BlockId.COMPUTE),
                          serverless=serverless, content_filtering=bool(values.get(BlockId.CONTENT_FILTER)),
                          ttl_hours=ttl)
        if not serverless and not spec.compute:
            raise UserError("Choose a VM size for managed compute", field="compute")
    except FmbotError as exc:
        ack(response_action="errors", errors={DEPLOY_BLOCKS.get(exc.field, BlockId.ENDPOINT_NAME): exc.on_field[:150]})
        return
    submit_within_budget(ctx, ack, client, view, state, lambda: _deploy(ctx, state, spec))


def _deploy(ctx: SlackContext, state: FormState, spec: DeploySpec) -> Refusal | None:
    """Quota and the endpoints already there are remote reads on Azure ML: never in the ack itself."""
    rt = ctx.rt
    if not spec.serverless:
        quota = rt.platform.check_quota(spec.compute, spec.instances, model=rt.platform.get_model(state.model),
                                        deployment=True)
        if not quota.ok:
            return quota_errors(quota)
    try:
        deploy_handlers.start_deploy(rt, deploy_handlers.DeployRequest(
            spec=spec, requester=state.user, reply_to=ReplyTarget(channel=state.channel)))
    except FmbotError as exc:
        return {DEPLOY_BLOCKS.get(exc.field, BlockId.ENDPOINT_NAME): ctx.explain(exc)}
    return None


def _answer_owner(ctx: SlackContext, client: Any, body: dict[str, Any],
                  answer: Callable[[str, str], dict[str, Any]]) -> None:
    """After the ack, `answer(endpoint, user)` goes to the clicker alone: ephemeral next to the
    button, or in their DM when the button has no channel (the App Home), never to a channel."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = body["user"]["id"]

    def run() -> None:
        try:
            message = answer(body["actions"][0]["value"], user)
        except Exception as exc:
            message = {"text": f":warning: {ctx.explain(exc)}"}
        if channel:
            ctx.tell(client, channel, user, message["text"], message.get("blocks"))
        else:
            dm = client.conversations_open(users=user)["channel"]["id"]
            client.chat_postMessage(channel=dm, **message)
    ctx.after_ack(run)


def on_show_key(ack, body, client, context):
    ctx: SlackContext = context["fm"]
    ack()
    _answer_owner(ctx, client, body, lambda name, user: key_message(
        deploy_handlers.endpoint_for_owner(ctx.rt, name, user)))


def on_rotate_key(ack, body, client, context):
    ctx: SlackContext = context["fm"]
    ack()
    _answer_owner(ctx, client, body, lambda name, user: key_message(
        deploy_handlers.rotate_endpoint_key(ctx.rt, name, user), rotated=True))


def command_rotate_key(cmd: SlashCommand) -> None:
    """Rotating may wait on the endpoint's host (up to a minute), so the answer first says it started."""
    if not cmd.rest:
        raise UserError("say which endpoint", hint=usage_hint("rotate-key", Surface.SLACK))
    name, ctx = cmd.rest.split()[0], cmd.ctx
    cmd.answer(text=f":key: Rotating the key of {name}; the new one comes only to you.")
    try:
        message = key_message(deploy_handlers.rotate_endpoint_key(ctx.rt, name, cmd.user), rotated=True)
    except Exception as exc:
        message = {"text": f":warning: {ctx.explain(exc)}"}
    ctx.tell(cmd.client, cmd.channel, cmd.user, message["text"], message.get("blocks"))


def on_delete(ack, body, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    ack()
    user = body["user"]["id"]

    def delete() -> None:
        try:
            deploy_handlers.delete_endpoint(rt, body["actions"][0]["value"], user)
        except Exception as exc:
            dm = client.conversations_open(users=user)["channel"]["id"]
            client.chat_postMessage(channel=dm, text=f":warning: Not deleted: {ctx.explain(exc)}")
        client.views_publish(user_id=user, view=user_home(rt, user))
    ctx.after_ack(delete)


def register(app: App) -> None:
    app.view(CallbackId.DEPLOY)(on_deploy)
    app.action(ActionId.SHOW_KEY)(on_show_key)
    app.action(ActionId.ROTATE_KEY)(on_rotate_key)
    app.action(ActionId.DELETE_ENDPOINT)(on_delete)

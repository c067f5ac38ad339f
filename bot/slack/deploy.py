"""Deploying from Slack: the deploy form, `/fm endpoints`, keys shown only to their owner, deletes.

The channel sees an endpoint's URL and a ready-to-paste curl example; the key goes only to the
person who deployed it, as an ephemeral message when they press **Show key**.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand
from bot.slack.forms import quota_errors
from bot.slack.home import user_home
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.state import FormState, dump_state, load_state
from bot.slack.views.deploy import SERVERLESS, deploy_modal, endpoint_list, key_message
from bot.slack.views.forms import read_values
from handlers import deploy as deploy_handlers
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint
from platforms.base import DeploySpec
from platforms.errors import FmbotError
from workers.ledger import ReplyTarget


def open_deploy(ctx: SlackContext, client: Any, trigger_id: str, channel: str, user: str, model: str) -> None:
    card = ctx.rt.platform.get_model(model)
    state = FormState(kind="deploy", channel=channel, user=user, model=card.ref)
    client.views_open(trigger_id=trigger_id, view=deploy_modal(card, dump_state(state, ctx.rt.redis),
                                                              serverless=card.serverless))


def command_deploy(cmd: SlashCommand) -> None:
    if not cmd.rest:
        raise UserError("say which model to deploy",
                        hint=f"{usage_hint('deploy', Surface.SLACK)}, or use a card's Deploy button")
    cmd.ctx.rt.platform.get_model(cmd.rest)
    cmd.ack()
    cmd.ctx.after_ack(open_deploy, cmd.ctx, cmd.client, cmd.trigger_id, cmd.channel, cmd.user, cmd.rest)


def command_endpoints(cmd: SlashCommand) -> None:
    cmd.ack(response_type="ephemeral", **endpoint_list(deploy_handlers.list_endpoints(cmd.ctx.rt)))


# Which block of the deploy form shows an error about each DeploySpec field.
DEPLOY_BLOCKS = {"endpoint": BlockId.ENDPOINT_NAME, "instances": BlockId.INSTANCES, "compute": BlockId.COMPUTE}


def on_deploy(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    state = load_state(view["private_metadata"], rt.redis)
    values = read_values(view)
    serverless = values.get(BlockId.DEPLOY_KIND) == SERVERLESS
    try:
        spec = DeploySpec(model=state.model, endpoint=(values.get(BlockId.ENDPOINT_NAME) or "").strip(),
                          instances=values.get(BlockId.INSTANCES) or 1, compute=values.get(BlockId.COMPUTE),
                          serverless=serverless, content_filtering=bool(values.get(BlockId.CONTENT_FILTER)))
        if not serverless and not spec.compute:
            raise UserError("Choose a VM size for managed compute", field="compute")
    except FmbotError as exc:
        ack(response_action="errors", errors={DEPLOY_BLOCKS.get(exc.field, BlockId.ENDPOINT_NAME): exc.on_field[:150]})
        return
    if not serverless:
        quota = rt.platform.check_quota(spec.compute, spec.instances, model=rt.platform.get_model(state.model),
                                        deployment=True)
        if not quota.ok:
            ack(response_action="errors", errors=quota_errors(quota))
            return
    try:
        deploy_handlers.start_deploy(rt, deploy_handlers.DeployRequest(
            spec=spec, requester=state.user, reply_to=ReplyTarget(channel=state.channel)))
    except FmbotError as exc:
        ack(response_action="errors",
            errors={DEPLOY_BLOCKS.get(exc.field, BlockId.ENDPOINT_NAME): ctx.explain(exc)[:150]})
        return
    ack()

def on_show_key(ack, body, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    ack()
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    user = body["user"]["id"]

    def show() -> None:
        try:
            endpoint = deploy_handlers.endpoint_for_owner(rt, body["actions"][0]["value"], user)
            text = key_message(endpoint)
        except Exception as exc:
            text = f":warning: {ctx.explain(exc)}"
        if channel:
            ctx.tell(client, channel, user, text)
        else:
            dm = client.conversations_open(users=user)["channel"]["id"]
            client.chat_postMessage(channel=dm, text=text)
    ctx.after_ack(show)

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
    app.action(ActionId.DELETE_ENDPOINT)(on_delete)

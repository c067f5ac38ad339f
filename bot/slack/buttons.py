"""Buttons on model cards, search pages and job messages."""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext
from bot.slack.deploy import open_deploy
from bot.slack.forms import open_form
from bot.slack.ids import ActionId
from bot.slack.views import catalog as catalog_views
from handlers import catalog, jobs
from platforms.tasks import parse_task


def _where(body: dict[str, Any]) -> tuple[str, str]:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    return channel, body["user"]["id"]


def register(app: App, ctx: SlackContext) -> None:
    rt = ctx.rt

    def opener(kind: str):
        def open_from_button(ack, body, client):
            ack()
            channel, user = _where(body)
            open_form(ctx, client, body["trigger_id"], kind, channel, user, body["actions"][0]["value"])
        return open_from_button

    def deploy_opener(ack, body, client):
        ack()
        channel, user = _where(body)
        try:
            open_deploy(ctx, client, body["trigger_id"], channel, user, body["actions"][0]["value"])
        except Exception as exc:
            ctx.tell(client, channel, user, f":warning: {ctx.explain(exc)}")

    app.action(ActionId.CARD_DEPLOY)(deploy_opener)
    app.action(ActionId.JOB_DEPLOY)(deploy_opener)
    app.action(ActionId.CARD_FINETUNE)(opener("finetune"))
    app.action(ActionId.CARD_EVALUATE)(opener("evaluate"))
    app.action(ActionId.JOB_EVALUATE)(opener("evaluate"))

    @app.action(re.compile(f"^{ActionId.PAGE}:"))
    def on_page(ack, body, respond):
        ack()
        state = json.loads(body["actions"][0]["value"])
        task = parse_task(state["t"]) if state.get("t") else None
        found = catalog.search_models(rt, state.get("q") or "", task)
        respond(replace_original=True, **catalog_views.search_results(found, state.get("q") or "", task,
                                                                      state["p"]))

    @app.action(ActionId.CANCEL_JOB)
    def on_cancel(ack, body, client):
        ack()
        channel, user = _where(body)
        try:
            jobs.cancel_job(rt, body["actions"][0]["value"], user)
        except Exception as exc:
            ctx.tell(client, channel, user, f":warning: Not canceled: {ctx.explain(exc)}")

    def decide(approve: bool):
        def on_decision(ack, body, client):
            ack()
            channel, user = _where(body)
            decision = jobs.approve_job if approve else jobs.reject_job
            try:
                decision(rt, body["actions"][0]["value"], user, channel)
            except Exception as exc:
                ctx.tell(client, channel, user, f":warning: {ctx.explain(exc)}")
        return on_decision

    app.action(ActionId.APPROVE_JOB)(decide(True))
    app.action(ActionId.REJECT_JOB)(decide(False))

    @app.action(ActionId.JOB_REGISTER)
    def on_register(ack, body, client):
        """Local fine-tunes are registered as they finish; the button shows the card where it is."""
        ack()
        channel, user = _where(body)
        try:
            card = catalog.model_card(rt, body["actions"][0]["value"])
            client.chat_postEphemeral(channel=channel, user=user, **catalog_views.model_card(card))
        except Exception as exc:
            ctx.tell(client, channel, user, f":warning: {ctx.explain(exc)}")

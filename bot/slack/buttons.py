"""Buttons on model cards, search pages and job messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
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

    def later(work: Callable[[Any, str, str, dict[str, Any]], None], failure: str = "") -> Callable:
        """A button listener that acks at once and does `work` after the ack; a failure is told
        to the person who pressed the button, prefixed with `failure`."""
        def on_button(ack, body, client):
            ack()
            channel, user = _where(body)
            ctx.after_ack_telling(client, channel, user, lambda: work(client, channel, user, body), failure)
        return on_button

    def opener(kind: str):
        return later(lambda client, channel, user, body: open_form(
            ctx, client, body["trigger_id"], kind, channel, user, body["actions"][0]["value"]))

    deploy_opener = later(lambda client, channel, user, body: open_deploy(
        ctx, client, body["trigger_id"], channel, user, body["actions"][0]["value"]))

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
        ctx.after_ack(lambda: respond(replace_original=True, **catalog_views.search_results(
            found, state.get("q") or "", task, state["p"])))

    app.action(ActionId.CANCEL_JOB)(later(
        lambda client, channel, user, body: jobs.cancel_job(rt, body["actions"][0]["value"], user),
        failure="Not canceled: "))
    app.action(ActionId.APPROVE_JOB)(later(
        lambda client, channel, user, body: jobs.approve_job(rt, body["actions"][0]["value"], user, channel)))
    app.action(ActionId.REJECT_JOB)(later(
        lambda client, channel, user, body: jobs.reject_job(rt, body["actions"][0]["value"], user, channel)))

    def show_card(client: Any, channel: str, user: str, body: dict[str, Any]) -> None:
        """Local fine-tunes are registered as they finish; the Register button shows the card where it is."""
        card = catalog.model_card(rt, body["actions"][0]["value"])
        client.chat_postEphemeral(channel=channel, user=user, **catalog_views.model_card(card))

    app.action(ActionId.JOB_REGISTER)(later(show_card))

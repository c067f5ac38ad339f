"""Buttons on model cards, search pages and job messages."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.slack.compare import picked_models
from bot.slack.context import SlackContext, later
from bot.slack.deploy import open_deploy
from bot.slack.forms import open_form
from bot.slack.ids import ActionId
from bot.slack.views import catalog as catalog_views
from handlers import catalog, compare, jobs
from platforms.tasks import parse_task


def _value(body: dict[str, Any]) -> str:
    return body["actions"][0]["value"]


def form_opener(kind: str) -> Callable[..., None]:
    return later(lambda ctx, client, channel, user, body: open_form(
        ctx, client, body["trigger_id"], kind, channel, user, _value(body)))


def on_page(ack, body, respond, context):
    ack()
    ctx: SlackContext = context["fm"]
    state = json.loads(_value(body))
    task = parse_task(state["t"]) if state.get("t") else None
    found = catalog.search_models(ctx.rt, state.get("q") or "", task)
    ctx.after_ack(lambda: respond(replace_original=True, **catalog_views.search_results(
        found, state.get("q") or "", task, state["p"])))


def show_card(ctx: SlackContext, client: Any, channel: str, user: str, body: dict[str, Any]) -> None:
    """Local fine-tunes are registered as they finish; the Register button shows the card where it is."""
    card = catalog.model_card(ctx.rt, _value(body))
    client.chat_postEphemeral(channel=channel, user=user, **catalog_views.model_card(card))


def open_comparison(ctx: SlackContext, client: Any, channel: str, user: str, body: dict[str, Any]) -> None:
    """The search page's Compare: the evaluate form, once, for the models ticked on the page."""
    models = compare.checked_count(picked_models(body), hint="Tick the boxes next to the models, then press Compare")
    open_form(ctx, client, body["trigger_id"], "compare", channel, user, None, models)


on_deploy_button = later(lambda ctx, client, channel, user, body: open_deploy(
    ctx, client, body["trigger_id"], channel, user, _value(body)))
on_cancel = later(lambda ctx, client, channel, user, body: jobs.cancel_job(ctx.rt, _value(body), user, channel),
                  failure="Not canceled: ")
on_approve = later(lambda ctx, client, channel, user, body: jobs.approve_job(ctx.rt, _value(body), user, channel))
on_reject = later(lambda ctx, client, channel, user, body: jobs.reject_job(ctx.rt, _value(body), user, channel))


def register(app: App) -> None:
    app.action(ActionId.CARD_DEPLOY)(on_deploy_button)
    app.action(ActionId.JOB_DEPLOY)(on_deploy_button)
    app.action(ActionId.CARD_FINETUNE)(form_opener("finetune"))
    app.action(ActionId.CARD_EVALUATE)(form_opener("evaluate"))
    app.action(ActionId.JOB_EVALUATE)(form_opener("evaluate"))
    app.action(re.compile(f"^{ActionId.PAGE}:"))(on_page)
    app.action(ActionId.CANCEL_JOB)(on_cancel)
    app.action(ActionId.APPROVE_JOB)(on_approve)
    app.action(ActionId.REJECT_JOB)(on_reject)
    app.action(ActionId.JOB_REGISTER)(later(show_card))
    app.action(ActionId.COMPARE_SELECTED)(later(open_comparison))
    app.action(ActionId.COMPARE_FINETUNE_BEST)(form_opener("finetune"))
    app.action(ActionId.COMPARE_DEPLOY_BEST)(on_deploy_button)

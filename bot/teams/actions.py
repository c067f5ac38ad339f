"""Buttons on fmbot's cards (`Action.Execute`, answered on `adaptiveCard/action`).

Each verb checks who clicked (their Entra id) against the policy, calls its handler, and answers
only the person who clicked: a short message, or a card meant for them alone (an endpoint's key
for its owner). A job card itself changes through the notifier, for everyone, once the ledger
has the change.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from microsoft_agents.activity import Activity, AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.teams import compare, consent, conversations
from bot.teams.context import TeamsContext, card_message, requester
from bot.teams.data import register_button
from bot.teams.ids import Verb
from bot.teams.views import catalog as catalog_views
from bot.teams.views.cards import CARD_TYPE, Element
from bot.teams.views.jobs import deployed_card
from handlers import catalog, costs, deploy, jobs

MESSAGE_TYPE = "application/vnd.microsoft.activity.message"


def message(text: str) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=HTTPStatus.OK, type=MESSAGE_TYPE, value=text)


def card_for_clicker(content: Element) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=HTTPStatus.OK, type=CARD_TYPE, value=content)


def _cancel(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    record = jobs.cancel_job(ctx.rt, str(data.get("job", "")), requester(activity), activity.conversation.id)
    return message(f"Canceled {record.id}.")


def _approve(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    record = jobs.approve_job(ctx.rt, str(data.get("job", "")), requester(activity), activity.conversation.id)
    return message(f"Approved {record.id}; it is queued.")


def _reject(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    record = jobs.reject_job(ctx.rt, str(data.get("job", "")), requester(activity), activity.conversation.id)
    return message(f"Rejected {record.id}.")


def _register(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> Element:
    """Local fine-tunes are registered as they finish; Register shows the catalog card, in the chat."""
    return catalog_views.model_card(catalog.model_card(ctx.rt, str(data.get("model", ""))))


def _show_key(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    """The owner's refresh (or click) gets the card with the key, once (then the card says how to
    rotate it); anyone else the card without it."""
    name, user = str(data.get("endpoint", "")), requester(activity)
    owner = conversations.user(ctx.rt.redis, user)
    info = ctx.rt.platform.get_endpoint(name)
    if info.owner and info.owner != user:
        if (activity.value or {}).get("trigger") == "automatic":
            return card_for_clicker(deployed_card(name, info.model, info.url or "", None))
        return message(f"Only whoever deployed {name} may see its key.")
    info = deploy.endpoint_for_owner(ctx.rt, name, user)
    key = info.key.get_secret_value() if info.key else None
    return card_for_clicker(deployed_card(name, info.model, info.url or "", owner["mri"] if owner else None, key,
                                          picked_up=key is None))


def _keep(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    held = costs.keep_endpoint(ctx.rt, str(data.get("endpoint", "")), requester(activity))
    return message(f"{held.endpoint} is kept until {held.expires_at:%Y-%m-%d %H:%M} UTC.")


def _delete(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    info = deploy.delete_endpoint(ctx.rt, str(data.get("endpoint", "")), requester(activity))
    return message(f"Deleted endpoint {info.name}.")


def _predictions(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> Activity | AdaptiveCardInvokeResponse:
    offered = consent.offer_predictions(ctx, activity, str(data.get("job", "")))
    return message(offered) if isinstance(offered, str) else offered


def _rerun(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return message(compare.rerun(ctx, activity, data))


def _with_base(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return message(compare.with_base(ctx, activity, data))


def _sort(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return card_for_clicker(compare.sorted_result(ctx, activity, data))


def _register_data(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    return message(register_button(ctx, activity, data))


VERBS: dict[str, Callable[[TeamsContext, Activity, dict[str, Any]], Any]] = {
    Verb.CANCEL_JOB: _cancel, Verb.APPROVE_JOB: _approve, Verb.REJECT_JOB: _reject,
    Verb.JOB_REGISTER: _register, Verb.SHOW_KEY: _show_key, Verb.COMPARE_RERUN: _rerun,
    Verb.JOB_PREDICTIONS: _predictions, Verb.COMPARE_BASE: _with_base, Verb.COMPARE_SORT: _sort,
    Verb.COMPARE_PICKED: compare.picked, Verb.KEEP_ENDPOINT: _keep, Verb.DELETE_ENDPOINT: _delete,
    Verb.DATA_REGISTER: _register_data,
}


def execute(ctx: TeamsContext, activity: Activity,
            data: dict[str, Any]) -> AdaptiveCardInvokeResponse | Activity | Element:
    verb = ((activity.value or {}).get("action") or {}).get("verb")
    run = VERBS.get(verb)
    if run is None:
        return message("This button is from an older fmbot; send `help` for the commands.")
    try:
        return run(ctx, activity, data or {})
    except Exception as exc:
        return message(f"⚠️ {ctx.explain(exc)}")


async def on_execute(ctx: TeamsContext, context: TurnContext, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
    answer = await ctx.blocking(execute, ctx, context.activity, data)
    if isinstance(answer, AdaptiveCardInvokeResponse):
        return answer
    if isinstance(answer, Activity):  # a file consent card
        await context.send_activity(answer)
        return message("Accept the file card in this chat and fmbot puts the file in your OneDrive.")
    await context.send_activity(card_message(answer))
    return message("The card is in the chat.")

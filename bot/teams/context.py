"""What every Teams route shares: settings, runtime, and how a turn's user and errors read.

Routes are async (the SDK's aiohttp hosting); fmbot's handlers are plain functions over Redis and
the platform, so routes run them with `blocking` on a thread and the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from microsoft_agents.activity import Activity, ActivityTypes, Attachment

from bot.settings import Settings
from bot.teams.limits import INVOKE_BUDGET_SECONDS
from bot.teams.views.cards import Element, attachment
from handlers import policy
from handlers.errors import UserError, user_message
from handlers.actions import Action
from handlers.registry import Surface
from workers import telemetry
from workers.ledger import ReplyTarget
from workers.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TeamsContext:
    settings: Settings
    rt: Runtime
    invoke_budget: float = INVOKE_BUDGET_SECONDS  # seconds a dialog step may take before "checking…"

    @staticmethod
    async def blocking(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(work, *args, **kwargs)

    @staticmethod
    def explain(exc: BaseException) -> str:
        """The user-facing text of an error; a bug gets a generic line and a logged trace id."""
        message = user_message(exc, Surface.TEAMS)
        if message is not None:
            return message
        trace = telemetry.current_trace_or_new()
        log.error("Teams request failed (trace %s)", trace, exc_info=exc)
        return f"Something went wrong on our side; give the admins trace id {trace}."


def requester(activity: Activity) -> str:
    """The Entra object id of whoever sent the activity: the id the ledger, the policy and the
    admins list know Teams users by. Without one (a guest, the Playground) the channel id."""
    sender = activity.from_property
    if sender is None:
        raise UserError("Teams sent no sender with this message")
    return sender.aad_object_id or sender.id


def reply_target(activity: Activity) -> ReplyTarget:
    return ReplyTarget(channel=activity.conversation.id, surface="teams")


def require(activity: Activity, action: Action) -> None:
    policy.current().require(policy.actor(requester(activity), activity.conversation.id), action, name_rule=True)


def card_message(content: Element, *, summary: str | None = None) -> Activity:
    """A message carrying one Adaptive Card (`summary` is what notifications and the chat list show)."""
    activity = Activity(type=ActivityTypes.message, attachments=[Attachment.model_validate(attachment(content))])
    if summary:
        activity.summary = summary
    return activity

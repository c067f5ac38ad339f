"""The notifier's Teams implementation: one card per job, updated in place, replies under it.

Workers call it synchronously, as they call the Slack one; each change runs the SDK's
`continue_conversation` from the stored conversation reference (so a worker started after the bot
restarted still finds the conversation) and makes its Bot Connector calls in order. Like the Slack
notifier it posts through `deliver_steps`, skipping the calls an earlier attempt already made, so
the outbox retries without posting anything twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes
from microsoft_agents.hosting.core import ClaimsIdentity, TurnContext
from redis import Redis

from bot.settings import Settings
from bot.teams import conversations
from bot.teams.connections import cloud_adapter, connection_manager, credentials_problem
from bot.teams.context import card_message
from bot.teams.views import compare as compare_views
from bot.teams.views.jobs import deployed_card, endpoint_notice_card, metrics_card, reply_text, status_card
from workers.ledger import JobRecord, Ledger, ReplyTarget
from workers.notifier import ChatMessage, JobEvent, deliver_steps

log = logging.getLogger(__name__)


class ConversationUnknown(Exception):
    """No reference is stored for the job's conversation: nothing can be posted there, now or on a
    retry, as if the connector had answered 404."""

    status = 404


class TeamsNotifier:
    def __init__(self, settings: Settings, ledger: Ledger, redis: Redis):
        self.settings, self.ledger, self.redis = settings, ledger, redis
        self._adapter: Any = None

    @property
    def adapter(self) -> Any:
        if self._adapter is None:
            self._adapter = cloud_adapter(connection_manager(self.settings))
        return self._adapter

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        if record.reply_to is None or record.reply_to.surface != "teams":
            return record
        return deliver_steps(record, self._steps(record, event), skip)

    def is_transient(self, exc: BaseException) -> bool:
        """Teams down, rate limiting, a network error: worth retrying. A 4xx the connector answered
        (MessageSizeTooBig, a conversation the bot was removed from) will be the same next time."""
        status = getattr(exc, "status", None)  # aiohttp's ClientResponseError, or ConversationUnknown
        if isinstance(exc, (aiohttp.ClientResponseError, ConversationUnknown)) and isinstance(status, int):
            return status == 429 or status >= 500
        return True

    def channel_post(self, target: ReplyTarget, message: ChatMessage) -> None:
        activity = Activity(type=ActivityTypes.message, text=message.text)
        self._run(target.channel, lambda context: context.send_activity(activity), about=None)

    def _steps(self, record: JobRecord, event: JobEvent) -> Iterator[Callable[[JobRecord], JobRecord]]:
        yield self._status
        reply = self._reply_for(record, event)
        if reply is not None:
            yield lambda current: self._reply(current, reply)

    def _reply_for(self, record: JobRecord, event: JobEvent) -> Activity | None:
        if record.kind == "compare" and event in (JobEvent.STARTED, JobEvent.COMPLETED):
            # A comparison's card shows its members' progress; the reply is the ranking.
            if event == JobEvent.STARTED or "comparison" not in record.result:
                return None
            return card_message(compare_views.result_card(record, compare_views.chart(record)),
                                summary=f"Ranking of {record.id}")
        if event == JobEvent.COMPLETED and record.kind in ("finetune", "evaluate"):
            png = None
            if len(record.loss_history) >= 2:
                from bot.plots import loss_curve_png

                png = loss_curve_png(record.loss_history, f"Training loss of {record.output_model or record.model}")
            return card_message(metrics_card(record, png), summary=f"Metrics of {record.id}")
        if event == JobEvent.COMPLETED and record.kind == "deploy":
            owner = conversations.user(self.redis, record.requester)
            endpoint = record.result.get("endpoint", "")
            return card_message(deployed_card(endpoint, record.model, record.result.get("url", ""),
                                               owner["mri"] if owner else None), summary=f"Endpoint {endpoint}")
        line = reply_text(record, event)
        if event in (JobEvent.ENDPOINT_EXPIRING, JobEvent.ENDPOINT_IDLE):
            return card_message(endpoint_notice_card(record, event), summary=line)
        return Activity(type=ActivityTypes.message, text=line) if line else None

    def _status(self, record: JobRecord) -> JobRecord:
        target = record.reply_to
        owner = conversations.user(self.redis, record.requester)
        draw = compare_views.status_card if record.kind == "compare" else status_card
        activity = card_message(draw(record, owner["name"] if owner else None),
                                 summary=f"{record.kind} {record.id}: {record.state}")
        if target.thread_ts is not None:
            activity.id = target.thread_ts
            self._run(target.channel, lambda context: context.update_activity(activity), about=target.thread_ts)
            return record
        sent = self._run(target.channel, lambda context: context.send_activity(activity), about=None)

        def remember(stored: JobRecord) -> None:
            stored.reply_to = target.model_copy(update={"thread_ts": sent.id})

        self.ledger.update(record.id, remember)
        return record.model_copy(update={"reply_to": target.model_copy(update={"thread_ts": sent.id})})

    def _reply(self, record: JobRecord, reply: Activity) -> JobRecord:
        self._run(record.reply_to.channel, lambda context: context.send_activity(reply),
                  about=record.reply_to.thread_ts)
        return record

    def _run(self, conversation_id: str, call: Callable[[TurnContext], Any], *, about: str | None) -> Any:
        """One Bot Connector call inside a proactive turn of the stored conversation. The turn is
        `about` the job card (the SDK sends what a turn says as a reply to the activity the turn is
        about), or about nothing, so the card itself is a new message."""
        reference = conversations.reference(self.redis, conversation_id)
        if reference is None:
            raise ConversationUnknown(f"no conversation reference stored for {conversation_id}")
        result: list[Any] = []
        failed: list[BaseException] = []

        async def turn(context: TurnContext) -> None:
            # The adapter's turn-error handler would swallow a failed call; the outbox must see it.
            context.activity.id = about
            try:
                result.append(await call(context))
            except Exception as exc:
                failed.append(exc)

        async def proactive() -> None:
            continuation = reference.get_continuation_activity()
            if credentials_problem(self.settings):  # --dev: the Playground takes anonymous posts
                await self.adapter.continue_conversation_with_claims(
                    ClaimsIdentity({}, authentication_type="anonymous"), continuation, turn)
            else:
                await self.adapter.continue_conversation(self.settings.teams_app_id, continuation, turn)

        asyncio.run(proactive())
        if failed:
            raise failed[0]
        return result[0]

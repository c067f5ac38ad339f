"""Telling the thread that asked: the notifier interface, and its Slack implementation.

Workers know when a job changes; the chat surface knows how a job looks. The notifier joins the
two: it takes a renderer (built by `bot/slack/views`) and posts through one Web API client, so no
worker code builds Block Kit and no view code talks to Redis.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from workers.ledger import JobRecord, Ledger

log = logging.getLogger(__name__)


class JobEvent(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class ChatMessage(BaseModel):
    text: str
    blocks: list[dict[str, Any]] = []


class JobRenderer(Protocol):
    def status_message(self, record: JobRecord) -> ChatMessage:
        """The one channel message kept current for the whole life of the job."""

    def thread_reply(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        """A reply in the job's thread for this event, or None when the event gets none."""


class Notifier(Protocol):
    def job_changed(self, record: JobRecord, event: JobEvent) -> JobRecord: ...


class NullNotifier:
    """For jobs started from the CLI, which reads the ledger instead."""

    def job_changed(self, record: JobRecord, event: JobEvent) -> JobRecord:
        return record


class SlackNotifier:
    def __init__(self, client: Any, renderer: JobRenderer, ledger: Ledger):
        self.client, self.renderer, self.ledger = client, renderer, ledger

    def job_changed(self, record: JobRecord, event: JobEvent) -> JobRecord:
        target = record.reply_to
        if target is None:
            return record
        status = self.renderer.status_message(record)
        if target.thread_ts is None:
            response = self.client.chat_postMessage(channel=target.channel, text=status.text, blocks=status.blocks)
            ts = response["ts"]

            def remember(stored: JobRecord) -> None:
                stored.reply_to = target.model_copy(update={"thread_ts": ts})

            record = self.ledger.update(record.id, remember)
        else:
            self.client.chat_update(channel=target.channel, ts=target.thread_ts, text=status.text, blocks=status.blocks)
        reply = self.renderer.thread_reply(record, event)
        if reply is not None:
            self.client.chat_postMessage(
                channel=target.channel, thread_ts=record.reply_to.thread_ts, text=reply.text, blocks=reply.blocks
            )
        return record

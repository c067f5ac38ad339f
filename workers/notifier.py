"""Telling the thread that asked: the notifier interface workers post through.

Workers know when a job changes; the chat surface knows how a job looks. A surface implements
`Notifier` (Slack's is `bot/slack/notifier.py`, with a renderer built by `bot/slack/views`), so no
worker code builds Block Kit or knows a chat client's errors, and no view code talks to Redis.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from workers.ledger import JobRecord

log = logging.getLogger(__name__)


class JobEvent(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    RETRYING = "retrying"
    APPROVED = "approved"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class ChatMessage(BaseModel):
    text: str
    blocks: list[dict[str, Any]] = []


class FileAttachment(BaseModel):
    """A file posted into the job's thread (e.g. the loss curve)."""

    filename: str
    title: str
    content: bytes


class JobRenderer(Protocol):
    def status_message(self, record: JobRecord) -> ChatMessage:
        """The one channel message kept current for the whole life of the job."""

    def thread_reply(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        """A reply in the job's thread for this event, or None when the event gets none."""

    def attachments(self, record: JobRecord, event: JobEvent) -> list[FileAttachment]:
        """Files for the thread at this event (none for most)."""


class PartialDelivery(Exception):
    """A notification failed after its first `done` calls succeeded; a retry skips those, so no
    message is posted twice."""

    def __init__(self, done: int):
        self.done = done
        super().__init__(f"delivery stopped after {done} calls")


class Notifier(Protocol):
    """What workers need of a chat surface; each surface implements it (`bot/slack/notifier.py`)."""

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord: ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed post is worth retrying later (an outage, rate limiting), or would fail
        the same way next time (the chat answered with an error about the message itself)."""


class NullNotifier:
    """For jobs started from the CLI, which reads the ledger instead."""

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        return record

    def is_transient(self, exc: BaseException) -> bool:
        return True

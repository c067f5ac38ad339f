"""Telling the thread that asked: the notifier interface workers post through.

Workers know when a job changes; the chat surface knows how a job looks. A surface implements
`Notifier` (Slack's is `bot/slack/notifier.py`, with a renderer built by `bot/slack/views`), so no
worker code builds Block Kit or knows a chat client's errors, and no view code talks to Redis.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from pydantic import BaseModel

from workers.ledger import JobRecord, ReplyTarget

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
    APPROVAL_REMINDER = "approval_reminder"
    ENDPOINT_EXPIRING = "endpoint_expiring"
    ENDPOINT_EXPIRED = "endpoint_expired"
    ENDPOINT_IDLE = "endpoint_idle"


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

    def direct_message(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        """A message for the requester alone (an idle endpoint's cost), or None."""


class PartialDelivery(Exception):
    """A notification failed after its first `done` calls succeeded; a retry skips those, so no
    message is posted twice."""

    def __init__(self, done: int):
        self.done = done
        super().__init__(f"delivery stopped after {done} calls")


class Notifier(Protocol):
    """What workers need of a chat surface; each surface implements it (`bot/slack/notifier.py`)."""

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord: ...

    def channel_post(self, target: ReplyTarget, message: ChatMessage) -> None:
        """A message of no job (a channel's cost digest) to a channel or conversation."""

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed post is worth retrying later (an outage, rate limiting), or would fail
        the same way next time (the chat answered with an error about the message itself)."""


class NullNotifier:
    """For jobs started from the CLI, which reads the ledger instead."""

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        return record

    def channel_post(self, target: ReplyTarget, message: ChatMessage) -> None:
        return None

    def is_transient(self, exc: BaseException) -> bool:
        return True


def deliver_steps(record: JobRecord, steps: Iterator[Callable[[JobRecord], JobRecord]], skip: int) -> JobRecord:
    """Run a notification's calls in order, skipping the first `skip` (made by an earlier attempt);
    a failing call raises PartialDelivery saying how many succeeded. Every surface posts this way."""
    done = skip
    try:
        for index, step in enumerate(steps):
            if index >= skip:
                record = step(record)
                done = index + 1
    except Exception as exc:
        raise PartialDelivery(done) from exc
    return record


class SurfaceNotifier:
    """Sends each job's changes to the surface its reply target names (Slack or Teams), so one
    worker serves jobs started anywhere; a surface this process has no notifier for is logged."""

    def __init__(self, notifiers: dict[str, Notifier]):
        self.notifiers = notifiers

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        if record.reply_to is None:
            return record
        notifier = self.notifiers.get(record.reply_to.surface)
        if notifier is None:
            log.error("job %s reports to %s, which this process is not set up for", record.id,
                      record.reply_to.surface)
            return record
        return notifier.job_changed(record, event, skip=skip)

    def channel_post(self, target: ReplyTarget, message: ChatMessage) -> None:
        notifier = self.notifiers.get(target.surface)
        if notifier is None:
            log.error("a post to %s on %s, which this process is not set up for", target.channel, target.surface)
            return
        notifier.channel_post(target, message)

    def is_transient(self, exc: BaseException) -> bool:
        """Worth retrying unless a surface knows the error as its service's final answer (each
        surface judges only its own client's errors)."""
        return all(notifier.is_transient(exc) for notifier in self.notifiers.values())

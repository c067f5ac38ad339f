"""Telling the thread that asked: the notifier interface, and its Slack implementation.

Workers know when a job changes; the chat surface knows how a job looks. The notifier joins the
two: it takes a renderer (built by `bot/slack/views`) and posts through one Web API client, so no
worker code builds Block Kit and no view code talks to Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
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
    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord: ...


class NullNotifier:
    """For jobs started from the CLI, which reads the ledger instead."""

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
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


class SlackNotifier:
    """Keeps the job's status message current, replies in its thread, and refreshes the
    requester's App Home (`home(user)` builds it) whenever the job changes state."""

    def __init__(self, client: Any, renderer: JobRenderer, ledger: Ledger,
                 home: Callable[[str], dict[str, Any]] | None = None):
        self.client, self.renderer, self.ledger, self.home = client, renderer, ledger, home

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        """Post the change as a sequence of Web API calls, skipping the first `skip` (already made by
        an earlier attempt); a failing call raises PartialDelivery saying how many succeeded."""
        if record.reply_to is None or record.reply_to.surface != "slack":
            return record
        done = skip
        try:
            for index, step in enumerate(self._steps(record, event)):
                if index >= skip:
                    record = step(record)
                    done = index + 1
        except Exception as exc:
            raise PartialDelivery(done) from exc
        return record

    def _steps(self, record: JobRecord, event: JobEvent) -> Iterator[Callable[[JobRecord], JobRecord]]:
        """The calls in order, each rendered only once the one before it is made: the status message
        never waits for the reply's text or a loss curve's PNG. (So rendering can fail after calls
        went through, which `job_changed` counts as a partial delivery too.)"""
        yield self._status
        reply = self.renderer.thread_reply(record, event)
        if reply is not None:
            yield lambda current: self._reply(current, reply)
        for attachment in self.renderer.attachments(record, event):
            yield lambda current, attachment=attachment: self._upload(current, attachment)
        if self.home is not None and event != JobEvent.PROGRESS:
            yield self._publish_home

    def _status(self, record: JobRecord) -> JobRecord:
        target = record.reply_to
        status = self.renderer.status_message(record)
        if target.thread_ts is not None:
            self.client.chat_update(channel=target.channel, ts=target.thread_ts, text=status.text, blocks=status.blocks)
            return record
        ts = self.client.chat_postMessage(channel=target.channel, text=status.text, blocks=status.blocks)["ts"]

        def remember(stored: JobRecord) -> None:
            stored.reply_to = target.model_copy(update={"thread_ts": ts})

        self.ledger.update(record.id, remember)
        return record.model_copy(update={"reply_to": target.model_copy(update={"thread_ts": ts})})

    def _reply(self, record: JobRecord, reply: ChatMessage) -> JobRecord:
        self.client.chat_postMessage(channel=record.reply_to.channel, thread_ts=record.reply_to.thread_ts,
                                     text=reply.text, blocks=reply.blocks)
        return record

    def _upload(self, record: JobRecord, attachment: FileAttachment) -> JobRecord:
        self.client.files_upload_v2(channel=record.reply_to.channel, thread_ts=record.reply_to.thread_ts,
                                    content=attachment.content, filename=attachment.filename,
                                    title=attachment.title, request_file_info=False)
        return record

    def _publish_home(self, record: JobRecord) -> JobRecord:
        self.client.views_publish(user_id=record.requester, view=self.home(record.requester))
        return record

"""The Slack implementation of the workers' `Notifier`: the job's status message, its thread, App Home."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from http.client import HTTPException
from typing import Any
from urllib.error import URLError

from slack_sdk.errors import SlackApiError

from workers.ledger import JobRecord, Ledger, ReplyTarget
from workers.notifier import ChatMessage, FileAttachment, JobEvent, JobRenderer, deliver_steps

log = logging.getLogger(__name__)
# What slack_sdk raises when Slack could not be reached or stopped answering mid-call.
TRANSIENT_ERRORS = (URLError, ConnectionError, TimeoutError, socket.timeout, HTTPException)


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
        return deliver_steps(record, self._steps(record, event), skip)

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
        direct = self.renderer.direct_message(record, event)
        if direct is not None:
            yield lambda current: self._direct(current, direct)
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

    def channel_post(self, target: ReplyTarget, message: ChatMessage) -> None:
        self.client.chat_postMessage(channel=target.channel, text=message.text, blocks=message.blocks or None)

    def _direct(self, record: JobRecord, message: ChatMessage) -> JobRecord:
        channel = self.client.conversations_open(users=record.requester)["channel"]["id"]
        self.client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
        return record

    def _upload(self, record: JobRecord, attachment: FileAttachment) -> JobRecord:
        self.client.files_upload_v2(channel=record.reply_to.channel, thread_ts=record.reply_to.thread_ts,
                                    content=attachment.content, filename=attachment.filename,
                                    title=attachment.title, request_file_info=False)
        return record

    def _publish_home(self, record: JobRecord) -> JobRecord:
        """Best-effort: App Home is rebuilt whole on the next change or when the tab is opened, so
        a failure here (the endpoint listing from Azure, Slack's answer) is logged and skipped; it
        never holds the job's later messages behind it."""
        try:
            self.client.views_publish(user_id=record.requester, view=self.home(record.requester))
        except Exception as exc:
            log.warning("skipped the App Home update of %s for job %s: %s", record.requester, record.id, exc)
        return record

    def is_transient(self, exc: BaseException) -> bool:
        """Slack down, rate limiting, a dropped connection: worth retrying. An error Slack answered
        with (channel_not_found, not_in_channel, invalid_blocks), or one of our own (a rendering
        bug), will be the same next time."""
        if isinstance(exc, SlackApiError):
            status = getattr(exc.response, "status_code", 200)
            return status == 429 or status >= 500
        return isinstance(exc, TRANSIENT_ERRORS)

"""What every Slack listener shares: settings, runtime, a pool for work after the ack, and replies.

The Bolt app runs with `process_before_response=True`: a listener runs on the request's own thread
and Slack gets its answer when the listener returns, with no polling for `ack()` in between. So a
listener acks with only what must be in the ack (a form's validation errors, the next view) and
hands anything else (reading the catalog or the ledger, Slack API calls, reading a file) to
`after_ack`: what runs before the ack is what every other request waits behind.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.settings import Settings
from bot.slack.answerer import Answerers
from bot.wsgi import IN_FLIGHT
from handlers.errors import user_message
from workers import telemetry
from handlers.registry import Surface
from workers.runtime import Runtime

log = logging.getLogger(__name__)
CLOSED_VIEW_ERRORS = {"not_found", "view_not_found"}
# The longest work after an ack waits for other acks to be made: a burst of 500 commands acks in
# about 0.2 s here, and a form's trigger id is valid for 3 s.
ACKS_FIRST_S = 0.5


@dataclass
class SlackContext:
    settings: Settings
    rt: Runtime
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=8, thread_name_prefix="fmbot-slack")
    )
    answerers: Answerers = field(init=False)

    def __post_init__(self) -> None:
        self.answerers = Answerers(self.rt.redis)

    def after_ack(self, work: Callable[..., Any], *args: Any) -> None:
        """Run `work` once the listener has returned and no other ack is being made (for at most
        `ACKS_FIRST_S`; see `bot.wsgi.InFlight`), in the request's context (its trace id)."""
        self.executor.submit(contextvars.copy_context().run, self._logged, work, *args)

    def after_ack_telling(self, client: Any, channel: str, user: str, work: Callable[[], Any],
                          failure: str = "") -> None:
        """`after_ack` for work a person asked for by a click: a failure is told to them, ephemeral,
        prefixed with `failure`."""
        def run() -> None:
            try:
                work()
            except Exception as exc:
                self.tell(client, channel, user, f":warning: {failure}{self.explain(exc)}")
        self.after_ack(run)

    @staticmethod
    def _logged(work: Callable[..., Any], *args: Any) -> None:
        IN_FLIGHT.wait_idle(ACKS_FIRST_S)
        try:
            work(*args)
        except Exception:
            log.exception("work after an ack failed")

    @staticmethod
    def explain(exc: BaseException, trace_id: str | None = None) -> str:
        """The user-facing text of an error; bugs get a generic line and a full log entry."""
        message = user_message(exc, Surface.SLACK)
        if message is not None:
            return message
        log.error("request failed (trace %s)", trace_id, exc_info=exc)
        where = f"give the admins trace id {trace_id}" if trace_id else "the admins can find it in the logs"
        return f"Something went wrong on our side; {where}."

    @staticmethod
    def update_view(client: Any, view_id: str, view: dict[str, Any]) -> bool:
        """Replace an open modal; a modal the user already closed is expected, not an error."""
        try:
            client.views_update(view_id=view_id, view=view)
            return True
        except SlackApiError as exc:
            if exc.response.get("error") in CLOSED_VIEW_ERRORS:
                return False
            raise

    @staticmethod
    def tell(client: Any, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """An ephemeral note only `user` sees, for refusals, problems found after an ack and keys."""
        client.chat_postEphemeral(channel=channel, user=user, text=text[:3000], blocks=blocks)


@dataclass
class SlashCommand:
    """One `/fm` delivery as every command listener receives it, after its empty ack: `rest` is the
    text after the command word, and what the listener says goes through the command's response
    URL (`respond`), seen only by whoever typed it."""

    ctx: SlackContext
    body: dict[str, Any]
    rest: str
    client: Any
    respond: Callable[..., Any]

    def answer(self, **fields: Any) -> None:
        self.respond(response_type="ephemeral", **fields)

    def answer_slowly(self, checking: str, answer: Callable[[], dict[str, Any]]) -> None:
        """Say `checking` at once and replace it with `answer()` (message fields) once that is
        ready: for answers that call a remote platform or probe endpoints, which may take seconds.
        A refusal replaces it the same way."""
        self.answer(text=f":hourglass_flowing_sand: {checking}")
        try:
            fields = answer()
        except Exception as exc:
            fields = {"text": f":warning: {self.ctx.explain(exc, telemetry.trace_id.get())}"}
        self.answer(replace_original=True, **fields)

    @property
    def user(self) -> str:
        return self.body["user_id"]

    @property
    def channel(self) -> str:
        return self.body["channel_id"]

    @property
    def trigger_id(self) -> str:
        return self.body["trigger_id"]


def _where(body: dict[str, Any]) -> tuple[str, str]:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    return channel, body["user"]["id"]


Work = Callable[[SlackContext, Any, str, str, dict[str, Any]], Any]


def later(work: Work, failure: str = "") -> Callable[..., None]:
    """A button listener that acks at once and does `work` after the ack; a failure is told
    to the person who pressed the button, prefixed with `failure`."""
    def on_button(ack, body, client, context):
        ack()
        ctx: SlackContext = context["fm"]
        channel, user = _where(body)
        ctx.after_ack_telling(client, channel, user, lambda: work(ctx, client, channel, user, body), failure)
    return on_button

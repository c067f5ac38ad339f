"""The Bolt app's one error handler: whatever a listener raises, the person hears back in Slack.

Without it Bolt answers Slack with a bare HTTP 500, which Slack shows as a vague failure (or, for a
form, "We had some trouble connecting"). Every answer carries the trace id the log entry has, so
an admin can find what happened; errors a user can fix read as themselves. The delivery's claim is
given back, so Slack's retry of it (or the user's resubmission of the same form) runs again.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltResponse

from bot.slack.context import SlackContext
from bot.slack.middleware import settle_delivery
from workers import telemetry


def on_error(error: Exception, body: dict[str, Any], context: dict[str, Any], client: Any) -> BoltResponse:
    settle_delivery(context, handled=False)
    text = f":warning: {SlackContext.explain(error, telemetry.current_trace_or_new())}"
    if body.get("command"):
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text[:3000]})
    if body.get("type") == "view_submission":
        inputs = [b["block_id"] for b in (body.get("view") or {}).get("blocks", []) if b.get("type") == "input"]
        if inputs:
            return BoltResponse(status=200, body={"response_action": "errors", "errors": {inputs[0]: text[:150]}})
    user = (body.get("user") or {}).get("id") or body.get("user_id")
    ctx: SlackContext | None = context.get("fm")
    if user and ctx is not None:
        ctx.after_ack(lambda: client.chat_postMessage(channel=user, text=text[:3000]))
    return BoltResponse(status=200, body="")

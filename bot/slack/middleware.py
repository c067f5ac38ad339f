"""Global Bolt middleware: each Slack delivery is handled at most once.

Slack re-sends a request it believes went unanswered (`X-Slack-Retry-Num`), and a user can submit
the same modal twice; without this, either would open a second form or start a second job. The key
names what makes a delivery unique: an event's id, a command's trigger id, a submitted view's id
plus a hash of its state. The claim lives in Redis (`workers.idempotency`), so every bot process
behind a load balancer agrees on which copy ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from redis import Redis
from slack_bolt import BoltResponse

from workers.idempotency import claim

log = logging.getLogger(__name__)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The idempotency key of a Slack delivery, or None for deliveries that are safe to repeat."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") and body.get("trigger_id"):
        return f"command:{body['trigger_id']}"
    if body.get("type") == "view_submission":
        view = body.get("view") or {}
        state = json.dumps(view.get("state") or {}, sort_keys=True)
        digest = hashlib.sha256(f"{view.get('private_metadata', '')}\n{state}".encode()).hexdigest()[:32]
        return f"view:{view.get('id')}:{digest}"
    return None


def once_per_delivery(redis: Redis) -> Callable[..., BoltResponse | None]:
    def middleware(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        key = delivery_key(body)
        if key is None or claim(redis, key):
            return next()
        log.info("ignored a repeated Slack delivery (%s)", key)
        return BoltResponse(status=200, body="")

    return middleware

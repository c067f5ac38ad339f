"""Global Bolt middleware: each Slack delivery is handled at most once, and only if the access
policy allows what it asks for.

Slack re-sends a request it believes went unanswered (`X-Slack-Retry-Num`), and a user can submit
the same modal twice; without this, either would open a second form or start a second job. The key
names what makes a delivery unique: an event's id, a command's trigger id, a submitted view's id
plus a hash of its state, a click's user, action and action timestamp. The claim lives in Redis (`workers.idempotency`), so every bot process
behind a load balancer agrees on which copy ran.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk.errors import SlackApiError

from bot.slack.ids import ActionId, CallbackId
from bot.slack.state import load_state
from handlers import policy
from handlers.policy import AccessDenied, Action
from handlers.registry import Command, Surface, lookup
from workers.idempotency import DEFAULT_TTL_SECONDS, LEASE_SECONDS, Lease

log = logging.getLogger(__name__)


def slash_command(body: dict[str, Any]) -> Command | None:
    """The registry's command a `/fm` delivery names (an empty one is `help`)."""
    return lookup((body.get("text") or "").strip().split(" ", 1)[0] or "help", Surface.SLACK)


def delivery_key(body: dict[str, Any]) -> str | None:
    """The idempotency key of a Slack delivery, or None for deliveries that are safe to repeat."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("command") and body.get("trigger_id"):
        command = slash_command(body)
        return None if command and command.repeatable else f"command:{body['trigger_id']}"
    if body.get("type") == "view_submission":
        view = body.get("view") or {}
        state = json.dumps(view.get("state") or {}, sort_keys=True)
        digest = hashlib.sha256(f"{view.get('private_metadata', '')}\n{state}".encode()).hexdigest()[:32]
        return f"view:{view.get('id')}:{digest}"
    if body.get("type") == "block_actions":
        action = (body.get("actions") or [{}])[0]
        if action.get("action_ts"):
            user = (body.get("user") or {}).get("id", "")
            return f"click:{user}:{action.get('action_id')}:{action['action_ts']}"
    return None


def settle_delivery(context: dict[str, Any], *, handled: bool) -> None:
    """Make a delivery's claim last once its listener finished, or give it back when it failed."""
    lease: Lease | None = context.pop(DELIVERY_LEASE, None)
    if lease is None:
        return
    try:
        lease.confirm() if handled else lease.release()
    except Exception:
        log.exception("could not settle the claim of Slack delivery %s; it lapses in %ss", lease.key, LEASE_SECONDS)


VIEW_CLAIM_SECONDS = 120
# A click is signed with its timestamp and Bolt refuses one more than 5 minutes old, so a claim of
# 5 minutes (and a margin for clock skew) leaves no moment when a copy of the click would run again.
CLICK_CLAIM_SECONDS = 6 * 60
ALREADY_SUBMITTED = "This form was just submitted with these values; change a value to submit it again."


DELIVERY_LEASE = "delivery_lease"  # the context entry holding a delivery's Lease until the app settles it


def repeated(redis: Redis, body: dict[str, Any], context: dict[str, Any]) -> BoltResponse | None:
    """The answer to a delivery already claimed, or None after claiming this one. Slack retries
    deliveries for minutes, so those claims last 15; a form's claim lasts two, so someone who
    resubmits unchanged values after an error is told why nothing happens. The claim is a lease
    until the listener has finished (`settle_delivery`): a listener that raised, or a process that
    died under it, does not make Slack's retry of the delivery be dropped."""
    key = delivery_key(body)
    if key is None:
        return None
    is_view = key.startswith("view:")
    ttl = VIEW_CLAIM_SECONDS if is_view else CLICK_CLAIM_SECONDS if key.startswith("click:") else DEFAULT_TTL_SECONDS
    lease = Lease(redis, key, ttl)
    if lease.take():
        context[DELIVERY_LEASE] = lease
        return None
    log.info("ignored a repeated Slack delivery (%s)", key)
    inputs = [b["block_id"] for b in (body.get("view") or {}).get("blocks", []) if b.get("type") == "input"]
    if is_view and inputs:
        return BoltResponse(status=200, body={"response_action": "errors", "errors": {inputs[0]: ALREADY_SUBMITTED}})
    return BoltResponse(status=200, body="")


# Every action id fmbot's messages and forms carry, and the policy action each needs; an id not
# here is refused, so a crafted payload cannot reach a listener the policy never heard of.
# Show key, Rotate key, Delete, Keep and Cancel need only the right to use fmbot here; their handlers
# then check that the clicker owns the endpoint or job (or is an admin).
BUTTON_ACTIONS = {
    ActionId.CARD_TRY: Action.TRY, ActionId.CARD_EVALUATE: Action.EVALUATE, ActionId.JOB_EVALUATE: Action.EVALUATE,
    ActionId.APPROVE_JOB: Action.APPROVE, ActionId.REJECT_JOB: Action.APPROVE,
    ActionId.CARD_FINETUNE: Action.FINETUNE, ActionId.CARD_DEPLOY: Action.DEPLOY, ActionId.JOB_DEPLOY: Action.DEPLOY,
    ActionId.PAGE: Action.SEARCH, ActionId.JOB_REGISTER: Action.SEARCH, ActionId.SHOW_KEY: Action.SEARCH,
    ActionId.DELETE_ENDPOINT: Action.SEARCH, ActionId.ROTATE_KEY: Action.SEARCH, ActionId.CANCEL_JOB: Action.SEARCH,
    ActionId.KEEP_ENDPOINT: Action.SEARCH,
    ActionId.COMPARE_PICK: Action.SEARCH, ActionId.COMPARE_SORT: Action.SEARCH,
    ActionId.COMPARE_SELECTED: Action.EVALUATE, ActionId.COMPARE_BASE: Action.EVALUATE,
    ActionId.COMPARE_RERUN: Action.EVALUATE, ActionId.COMPARE_FINETUNE_BEST: Action.FINETUNE,
    ActionId.COMPARE_DEPLOY_BEST: Action.DEPLOY,
}
# A form whose kind is not itself a policy action: a comparison is evaluations.
FORM_ACTIONS = {"compare": Action.EVALUATE}
# Elements inside a form: they act for the form, so the form's own action and channel apply.
FORM_ELEMENTS = {ActionId.MODEL, ActionId.TASK, ActionId.FILE, ActionId.SOURCE, ActionId.SPLIT, ActionId.COLUMN,
                 ActionId.COMPUTE, ActionId.NUMBER, ActionId.DEPLOY_KIND, ActionId.TEXT, ActionId.DATASET,
                 ActionId.SKIP_BAD_ROWS, ActionId.REGISTER_DATASET}
FORM_CALLBACKS = {CallbackId.FORM_DATA, CallbackId.FORM_MAPPING, CallbackId.FORM_COMPUTE, CallbackId.FORM_CHECKING,
                  CallbackId.DEPLOY, CallbackId.IMPORT}
UNKNOWN = "fmbot does not know that request, so it did nothing"


def _button_action(action_id: str) -> Action | None:
    """`search_page:3` is the PAGE button of page 3; every other id is matched whole."""
    try:
        return BUTTON_ACTIONS.get(ActionId(action_id.split(":", 1)[0] if action_id.startswith(ActionId.PAGE)
                                           else action_id))
    except ValueError:
        return None


def _form(view: dict[str, Any], user: str, redis: Redis) -> tuple[Action, str]:
    """The form's action and the channel it was opened in, as its state says: a form acts where it
    was opened, and only for whoever opened it."""
    if view.get("callback_id") not in FORM_CALLBACKS:
        raise AccessDenied(UNKNOWN, hint="Open the form again from a command or a button")
    try:
        state = load_state(view.get("private_metadata") or "", redis)
    except Exception:
        raise AccessDenied("this form has expired or was damaged", hint="Open it again") from None
    if state.user != user:
        raise AccessDenied("this form was opened by someone else", hint="Open your own from a command or a button")
    return FORM_ACTIONS.get(state.kind) or Action(state.kind), state.channel


def requested_action(body: dict[str, Any], redis: Redis) -> tuple[Action | None, str, str | None]:
    """What a delivery would do under the policy, who asks, and from which channel (None: nothing
    the policy guards, such as an event). Raises AccessDenied for a request fmbot does not know."""
    if body.get("command"):
        command = slash_command(body)
        return command.permission if command else None, body.get("user_id", ""), body.get("channel_id")
    kind = body.get("type")
    if kind in (None, "event_callback", "url_verification", "app_rate_limited"):
        return None, "", None
    user = (body.get("user") or {}).get("id", "")
    if kind == "block_actions":
        action_id = (body.get("actions") or [{}])[0].get("action_id") or ""
        if body.get("view") and action_id in FORM_ELEMENTS:
            action, channel = _form(body["view"], user, redis)
            return action, user, channel
        action = _button_action(action_id)
        if action is None:
            raise AccessDenied(UNKNOWN, hint="Use the buttons on fmbot's own messages")
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        return action, user, channel
    if kind in ("view_submission", "block_suggestion"):
        action, channel = _form(body.get("view") or {}, user, redis)
        return action, user, channel
    if kind == "view_closed":
        return None, user, None
    raise AccessDenied(UNKNOWN, hint="See `/fm help`")


def _refusal(body: dict[str, Any], client: Any, channel: str | None, user: str, text: str) -> BoltResponse:
    """Refusals are seen only by the person refused: the command's ephemeral answer, an error on
    the form, or an ephemeral message next to the button."""
    if body.get("command"):
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    if body.get("type") == "block_suggestion":
        return BoltResponse(status=200, body={"options": []})
    if body.get("type") == "view_submission":
        inputs = [b["block_id"] for b in (body.get("view") or {}).get("blocks", []) if b.get("type") == "input"]
        if inputs:
            return BoltResponse(status=200, body={"response_action": "errors", "errors": {inputs[0]: text[:150]}})
    if not user:
        return BoltResponse(status=200, body="")
    if channel:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    else:
        client.chat_postMessage(channel=user, text=text)
    return BoltResponse(status=200, body="")


def refused(redis: Redis, body: dict[str, Any], client: Any) -> BoltResponse | None:
    """The refusal of a delivery the access policy does not allow, or None."""
    user = (body.get("user") or {}).get("id") or body.get("user_id", "")
    channel = (body.get("channel") or {}).get("id") or body.get("channel_id")
    action = None
    try:
        action, user, channel = requested_action(body, redis)
        if action is not None:
            policy.current().require(policy.actor(user, channel), action)
    except AccessDenied as exc:
        log.info("refused %s to %s in %s", action, user, channel)
        return _refusal(body, client, channel, user, f":no_entry: {exc}")
    return None


class Gate(Middleware):
    """fmbot's one global middleware: a delivery is handled once, only if the policy allows it, and
    every listener finds fmbot's `SlackContext` as `context["fm"]`, so listeners are plain functions.
    One `Middleware`, which Bolt calls with the request itself: a middleware function costs Bolt's
    argument injection (~25 µs) on every delivery, before its ack."""

    def __init__(self, redis: Redis, ctx: Any):
        self.redis, self.ctx = redis, ctx

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> BoltResponse | None:
        answer = repeated(self.redis, req.body, req.context) or refused(self.redis, req.body, req.context.client)
        if answer is not None:
            return answer
        req.context["fm"] = self.ctx
        return next()


class SlackGroups:
    """A user's Slack user groups (ids and @handles), from usergroups.list, cached.

    Looked up in the ack path of every delivery the policy checks, so it never waits there on
    Slack, nor holds a lock while someone else does: a lookup answers from the last listing and,
    once that is older than `ttl`, starts one refresh in the background. A failed refresh is cached
    too (tried again after `retry_after`), so a missing scope or an outage costs one call per
    period, not one per request. Only a process's first lookups wait, at most `first_wait`
    seconds, for the first listing (`create_app` starts it when the policy names groups).
    """

    def __init__(self, client: Any, ttl: float = 300.0, *, retry_after: float = 60.0, first_wait: float = 2.0):
        self.client, self.ttl, self.retry_after, self.first_wait = client, ttl, retry_after, first_wait
        self.members: dict[str, list[str]] = {}
        self.loaded_at = float("-inf")
        self.listed = threading.Event()
        self._refreshing = threading.Lock()

    def __call__(self, user: str) -> list[str]:
        if time.monotonic() - self.loaded_at > self.ttl:
            self.refresh_in_background()
        if not self.listed.is_set():
            self.listed.wait(self.first_wait)
        return self.members.get(user, [])

    def refresh_in_background(self) -> None:
        if self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._refresh, name="fmbot-usergroups", daemon=True).start()

    def _refresh(self) -> None:
        try:
            groups = self.client.usergroups_list(include_users=True).get("usergroups", [])
        except Exception as exc:
            reason = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
            log.warning("cannot read user groups (%s); group rules of the access policy match nobody new "
                        "until a listing succeeds (next try in %ss)", reason, self.retry_after)
            self.loaded_at = time.monotonic() - self.ttl + self.retry_after
        else:
            members: dict[str, list[str]] = {}
            for group in groups:
                for member in group.get("users", []):
                    members.setdefault(member, []).extend([group["id"], f"@{group.get('handle', '')}"])
            self.members, self.loaded_at = members, time.monotonic()
        finally:
            self.listed.set()
            self._refreshing.release()

"""A Teams user's Entra groups, from Microsoft Graph, for the access policy's group rules.

Teams says who sent an activity (`from.aadObjectId`) but not their groups, so the bot asks Graph
`POST /users/{id}/checkMemberGroups` (transitive; at most 20 group ids a call) about the Entra groups
the policy names, with an app-only token from the bot's own Entra connection (its secret or managed
identity; the app needs Graph's application permission GroupMember.Read.All and User.Read.All,
with admin consent).

Like Slack's user groups (bot/slack/middleware.py), a lookup never waits on Graph for long nor holds
a lock while anyone does: each user's answer is cached for `ttl` and refreshed in the background; a
failure is cached too (tried again after `retry_after`), so an outage costs one call per user per
period; only a user's first lookup waits, at most `first_wait` seconds (longer than Slack's two: a
Teams message has no three-second ack, and a dialog step has fifteen). While a user's groups are
unknown, group rules match nobody and the refusal says why (fail closed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests
from microsoft_agents.authentication.msal import MsalConnectionManager

from handlers.policy import GroupsUnknown

log = logging.getLogger(__name__)
CHECK_LIMIT = 20  # group ids one checkMemberGroups call may carry (Graph's limit)


def entra_group_ids(names: Iterable[str]) -> list[str]:
    """The names that are Entra object ids (the rest are Slack groups), sorted."""
    found = set()
    for name in names:
        try:
            found.add(str(uuid.UUID(name)))
        except ValueError:
            continue
    return sorted(found)


def graph_token(manager: MsalConnectionManager, graph_url: str) -> Callable[[], str]:
    """An app-only token for `graph_url`'s host from the bot's connection (MSAL caches it)."""
    parts = urlsplit(graph_url)
    resource = f"{parts.scheme}://{parts.netloc}"

    def token() -> str:
        connection = manager.get_default_connection()
        return asyncio.run(connection.get_access_token(resource, [f"{resource}/.default"]))

    return token


@dataclass
class _Answer:
    at: float
    groups: list[str]
    failure: str | None = None


class GraphGroups:
    def __init__(self, graph_url: str, token: Callable[[], str] | None, group_ids: list[str], *, ttl: float = 300.0,
                 retry_after: float = 60.0, first_wait: float = 5.0):
        """`token` None: the bot has no Entra credentials (`--dev`), so no group can be read."""
        self.graph_url, self.token, self.group_ids = graph_url.rstrip("/"), token, group_ids
        self.ttl, self.retry_after, self.first_wait = ttl, retry_after, first_wait
        self.answers: dict[str, _Answer] = {}
        self.calls = 0  # Graph requests made, for the log and the tests
        self._inflight: dict[str, threading.Event] = {}
        self._books = threading.Lock()  # guards the two dicts; never held while Graph is asked

    def __call__(self, user: str) -> list[str]:
        if not self.group_ids:
            return []
        try:
            uuid.UUID(user)
        except ValueError:
            return []  # a guest or the Playground, without an Entra object id: in no Entra group
        answer = self.answers.get(user)
        now = time.monotonic()
        if answer is None or now - answer.at > (self.retry_after if answer.failure else self.ttl):
            running = self._refresh_in_background(user)
            if answer is None or answer.failure:
                running.wait(self.first_wait)
                answer = self.answers.get(user) or answer
        if answer is None:
            raise GroupsUnknown(f"Microsoft Graph did not answer within {self.first_wait:g}s")
        if answer.failure:
            raise GroupsUnknown(answer.failure)
        return answer.groups

    def _refresh_in_background(self, user: str) -> threading.Event:
        with self._books:
            running = self._inflight.get(user)
            if running is None:
                running = self._inflight[user] = threading.Event()
                threading.Thread(target=self._refresh, args=(user, running), name="fmbot-entra-groups",
                                 daemon=True).start()
            return running

    def _refresh(self, user: str, done: threading.Event) -> None:
        try:
            answer = _Answer(time.monotonic(), self._check(user))
        except GroupsUnknown as exc:
            log.warning("cannot read the Entra groups of %s (%s); group rules match them only once Graph "
                        "answers (next try in %ss)", user, exc, self.retry_after)
            answer = _Answer(time.monotonic(), [], str(exc))
        with self._books:
            self.answers[user] = answer
            del self._inflight[user]
        done.set()

    def _check(self, user: str) -> list[str]:
        if self.token is None:
            raise GroupsUnknown("the bot has no Entra credentials to ask Microsoft Graph with (TEAMS_APP_ID)")
        try:
            headers = {"Authorization": f"Bearer {self.token()}"}
        except Exception as exc:
            raise GroupsUnknown(f"the bot could not get a Microsoft Graph token: {exc}") from None
        found: list[str] = []
        for start in range(0, len(self.group_ids), CHECK_LIMIT):
            self.calls += 1
            try:
                response = requests.post(f"{self.graph_url}/users/{quote(user)}/checkMemberGroups", headers=headers,
                                         json={"groupIds": self.group_ids[start:start + CHECK_LIMIT]}, timeout=10)
            except requests.RequestException as exc:
                raise GroupsUnknown(f"Microsoft Graph could not be reached: {type(exc).__name__}") from None
            if response.status_code == 404:
                return []  # not in this directory (another tenant's guest): in none of its groups
            if response.status_code in (401, 403):
                raise GroupsUnknown(f"Microsoft Graph refused the bot ({response.status_code}): grant the app "
                                    "GroupMember.Read.All and User.Read.All with admin consent")
            if not response.ok:
                raise GroupsUnknown(f"Microsoft Graph answered {response.status_code}")
            try:
                found += [str(g) for g in response.json()["value"]]
            except (ValueError, KeyError, TypeError):
                raise GroupsUnknown("Microsoft Graph's answer was not a list of group ids") from None
        return found

"""A local stand-in of the Slack Web API, and a client that sends Slack-signed requests.

The stand-in is a real HTTP server on 127.0.0.1 (port 0). It records every call, answers with the
shapes of Slack's documented responses, serves uploaded files at `url_private_download` only to a
request that carries the bot token, and can be told to fail (429 / 503) for a while.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import requests

from tests.helpers import LocalServer, Served, wait_until

BOT_TOKEN = "xoxb-test-token"


SIGNING_SECRET = "test-signing-secret"


@functools.cache
def nowhere() -> str:
    """The response URL of deliveries whose answers a test does not read: a sink on loopback that takes
    every post with a 200 and keeps nothing. Not a refused port: Bolt's `respond` retries a refused
    connection after a back-off of 0.5 to 1.5 s, which a suite of a thousand commands pays in minutes."""
    def discard(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("Content-Length") or 0))
        _reply(request, 200, b"ok", "text/plain")

    return f"http://127.0.0.1:{LocalServer({'POST': discard}).port}/respond"


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    at: float = field(default_factory=time.perf_counter)  # when it arrived, for latency figures
    path: str = ""  # where a response_url post went: each command can have a URL of its own


@dataclass
class PostRateLimit:
    """Slack's limit on chat.postMessage, which the stand-in enforces when given one: "chat.postMessage
    generally allows posting one message per second per channel, while also maintaining a
    workspace-wide limit" and "Posting messages: 1 per second. Short bursts >1 allowed"
    (https://docs.slack.dev/apis/web-api/rate-limits, the Special Tier). A call over it is answered
    429 with `Retry-After` in whole seconds, as Slack answers. Slack publishes neither the burst size
    nor the workspace-wide figure: `burst` is a guess (a token bucket of that many messages per
    channel, refilled at `per_second`), and no workspace-wide limit is played."""

    per_second: float = 1.0
    burst: int = 2
    _tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # channel: (tokens, when)

    def take(self, channel: str) -> int:
        """0 when the message may be posted now, else the seconds Slack would say to wait."""
        now = time.monotonic()
        tokens, when = self._tokens.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - when) * self.per_second)
        if tokens >= 1:
            self._tokens[channel] = (tokens - 1, now)
            return 0
        self._tokens[channel] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.per_second))


@dataclass
class SlackStandIn(Served):
    token: str = BOT_TOKEN
    calls: list[Call] = field(default_factory=list)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: list[int] = field(default_factory=list)
    method_failures: dict[str, list[int]] = field(default_factory=dict)
    usergroups: list[dict[str, Any]] = field(default_factory=list)
    # Who is in which conversation (conversations.members), and where each file is shared.
    members: dict[str, list[str]] = field(default_factory=lambda: {"C0CHAN": ["U0USER"]})
    file_channels: dict[str, list[str]] = field(default_factory=dict)
    held: dict[str, threading.Event] = field(default_factory=dict)
    post_limit: PostRateLimit | None = None
    server: LocalServer | None = None
    _ts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ lifecycle

    def routes(self) -> dict[str, Any]:
        return {"GET": self._serve_file, "POST": self._api}

    @property
    def base_url(self) -> str:
        return self.origin

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ test helpers

    def add_file(self, name: str, content: bytes, content_type: str = "application/octet-stream",
                 channels: tuple[str, ...] = ("C0CHAN",)) -> dict[str, Any]:
        """Register an uploaded file, shared in `channels`; returns the file object Slack puts in a
        file_input state."""
        file_id = f"F{len(self.files) + 1:08d}"
        self.files[file_id] = (name, content, content_type)
        self.file_channels[file_id] = list(channels)
        return self._file_object(file_id, name, content)

    def _file_object(self, file_id: str, name: str, content: bytes) -> dict[str, Any]:
        url = f"{self.base_url}/files-pri/T0001-{file_id}/download/{urllib.parse.quote(name)}"
        return {"id": file_id, "name": name, "title": name, "size": len(content),
                "filetype": name.rsplit(".", 1)[-1], "url_private": url, "url_private_download": url,
                "permalink": f"https://test.slack.com/files/U0USER/{file_id}/{urllib.parse.quote(name)}"}

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.failures.extend(statuses)

    def fail_next_of(self, method: str, *statuses: int) -> None:
        """Fail only the next calls of one Web API method (e.g. the thread reply, not the status)."""
        with self._lock:
            self.method_failures.setdefault(method, []).extend(statuses)

    def hold(self, method: str) -> threading.Event:
        """Keep calls of `method` waiting (recorded, unanswered) until the returned event is set: a
        caller is caught mid-call, holding whatever it holds."""
        with self._lock:
            self.held[method] = threading.Event()
            return self.held[method]

    def limit_problems(self) -> list[str]:
        """Every Slack size limit any recorded call broke (see bot/slack/limits.py)."""
        from bot.slack.limits import message_problems, view_problems

        problems = []
        for call in list(self.calls):
            if isinstance(call.params.get("view"), dict):
                problems += [f"{call.method}: {p}" for p in view_problems(call.params["view"])]
            if "blocks" in call.params or "text" in call.params:
                blocks = call.params.get("blocks") or []
                blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                problems += [f"{call.method}: {p}" for p in message_problems({"blocks": blocks,
                                                                               "text": call.params.get("text")})]
        return problems

    def of(self, method: str) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method]

    def answers(self, response_url: str) -> list[dict[str, Any]]:
        """What was posted to one response URL, in order: fmbot acks a command empty and answers there."""
        path = urllib.parse.urlsplit(response_url).path
        return [c.params for c in self.of("response_url") if c.path == path]

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.1) -> Any:
        return wait_until(predicate, timeout, interval, about=lambda: f"calls: {[c.method for c in self.calls]}")

    # ------------------------------------------------------------------ HTTP

    def _serve_file(self, request: BaseHTTPRequestHandler) -> None:
        if request.path.startswith("/redirect?to="):
            request.send_response(302)
            request.send_header("Location", urllib.parse.unquote(request.path.split("=", 1)[1]))
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        parts = request.path.split("/")
        file_id = parts[2].split("-")[-1] if len(parts) > 2 and parts[1] == "files-pri" else ""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            body = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"
            request.send_response(200)
            request.send_header("Content-Type", "text/html; charset=utf-8")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
            return
        if file_id not in self.files:
            request.send_response(404)
            request.end_headers()
            return
        _, content, content_type = self.files[file_id]
        request.send_response(200)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(content)))
        request.end_headers()
        request.wfile.write(content)

    def _api(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length)
        path = request.path.split("?")[0]
        if path.startswith("/upload/"):
            self.uploads[path.rsplit("/", 1)[-1]] = raw
            self._reply(request, 200, b"OK", "text/plain")
            return
        if path.startswith("/respond/"):
            self.calls.append(Call(method="response_url", params=json.loads(raw or b"{}"),
                                   headers=dict(request.headers.items()), path=path))
            self._reply(request, 200, b"ok", "text/plain")
            return
        method = path.removeprefix("/api/")
        params = self._params(request, raw)
        headers = {k: v for k, v in request.headers.items()}
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
            if failure is None and self.method_failures.get(method):
                failure = self.method_failures[method].pop(0) or None  # 0: let this call through
            retry_after = 1
            if failure is None and self.post_limit is not None and method == "chat.postMessage":
                retry_after = self.post_limit.take(str(params.get("channel")))
                failure = 429 if retry_after else None
            self.calls.append(Call(method=f"{method}!{failure}" if failure else method, params=params, headers=headers))
            held = self.held.get(method)
        if held is not None:
            held.wait(timeout=60)
        if failure:
            extra = {"Retry-After": str(retry_after)} if failure == 429 else {}
            self._reply(request, failure, json.dumps({"ok": False, "error": "ratelimited"}).encode(), extra=extra)
            return
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self._json(request, {"ok": False, "error": "invalid_auth"})
            return
        self._json(request, self._answer(method, params))

    @staticmethod
    def _params(request: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
        content_type = request.headers.get("Content-Type", "")
        if "json" in content_type:
            return json.loads(raw or b"{}")
        params: dict[str, Any] = dict(urllib.parse.parse_qsl(raw.decode()))
        for key in ("blocks", "view", "files", "attachments"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except json.JSONDecodeError:
                    pass
        return params

    def _next_ts(self) -> str:
        with self._lock:
            self._ts += 1
            return f"{int(time.time())}.{self._ts:06d}"

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://fmbot-test.slack.com/", "team": "Test", "user": "fmbot",
                    "team_id": "T0001", "user_id": "U0BOT", "bot_id": "B0001"}
        if method in ("chat.postMessage", "chat.update"):
            ts = params.get("ts") or self._next_ts()
            return {"ok": True, "channel": params.get("channel"), "ts": ts,
                    "message": {"text": params.get("text"), "ts": ts}}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": self._next_ts()}
        if method in ("views.open", "views.update", "views.push", "views.publish"):
            view = params.get("view") or {}
            return {"ok": True, "view": {**view, "id": "V0001", "hash": "h1"}}
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.uploads) + 100:08d}"
            return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = params.get("files") or []
            return {"ok": True, "files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}
        if method == "files.info":
            for file_id, (name, content, _) in self.files.items():
                if file_id == params.get("file"):
                    shared = self.file_channels.get(file_id, [])
                    return {"ok": True, "file": {**self._file_object(file_id, name, content),
                                                 "channels": [c for c in shared if c.startswith("C")],
                                                 "groups": [c for c in shared if c.startswith("G")],
                                                 "ims": [c for c in shared if c.startswith("D")]}}
            return {"ok": False, "error": "file_not_found"}
        if method == "usergroups.list":
            return {"ok": True, "usergroups": self.usergroups}
        if method == "conversations.members":
            everyone, start = self.members.get(params.get("channel", ""), []), int(params.get("cursor") or 0)
            size = int(params.get("limit") or 100)
            page = everyone[start:start + size]
            following = str(start + size) if start + size < len(everyone) else ""
            return {"ok": True, "members": page, "response_metadata": {"next_cursor": following}}
        if method == "conversations.open":
            return {"ok": True, "channel": {"id": "D0001"}}
        return {"ok": True}

    @staticmethod
    def _json(request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        SlackStandIn._reply(request, 200, json.dumps(body).encode())

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json",
               extra: dict[str, str] | None = None) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(body)


# ---------------------------------------------------------------------- signed requests to the bot


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def button_payload(action_id: str, value: str, *, user: str = "U0USER", channel: str | None = "C0CHAN",
                   action_ts: str | None = None) -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for a click on a button in a message."""
    action = {"action_id": action_id, "value": value, "type": "button", **({"action_ts": action_ts} if action_ts else {})}
    payload: dict[str, Any] = {"type": "block_actions", "team": {"id": "T0001"}, "user": {"id": user},
                               "api_app_id": "A0001", "trigger_id": f"t.{time.time_ns()}", "actions": [action],
                               "response_url": nowhere()}
    if channel:
        payload["channel"] = {"id": channel}
        payload["container"] = {"type": "message", "channel_id": channel}
    return payload


class SlackSender:
    """Sends requests to the bot's /slack/events exactly as Slack does: form bodies, v0 signatures."""

    def __init__(self, url: str, secret: str = SIGNING_SECRET, response_url: str | None = None):
        self.url, self.secret, self.response_url = url, secret, response_url or nowhere()
        self.session = requests.Session()

    def post(self, body: str, *, timestamp: int | None = None, signature: str | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        ts = int(time.time()) if timestamp is None else timestamp
        all_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature if signature is not None else sign(body, ts, self.secret),
            **(headers or {}),
        }
        return self.session.post(self.url, data=body.encode(), headers=all_headers, timeout=10)

    def command(self, text: str, *, user: str = "U0USER", channel: str = "C0CHAN", response_url: str | None = None,
                **kwargs: Any) -> requests.Response:
        body = urllib.parse.urlencode({
            "token": "legacy", "team_id": "T0001", "team_domain": "test", "channel_id": channel,
            "channel_name": "ml", "user_id": user, "user_name": "ada", "command": "/fm", "text": text,
            "api_app_id": "A0001", "response_url": response_url or self.response_url,
            "trigger_id": f"trigger.{time.time_ns()}",
        })
        return self.post(body, **kwargs)

    def ask(self, text: str, slack: "SlackStandIn", *, answers: int = 1, timeout: float = 30,
            **kwargs: Any) -> list[dict[str, Any]]:
        """A command with a response URL of its own at `slack`, and the first `answers` messages fmbot
        posted there; its ack must be empty, as Slack shows nothing for it."""
        response_url = f"{slack.base_url}/respond/{time.time_ns()}"
        acked = self.command(text, response_url=response_url, **kwargs)
        assert acked.status_code == 200 and acked.text == "", (acked.status_code, acked.text[:300])
        return slack.wait_for(lambda: slack.answers(response_url)[answers - 1:] and slack.answers(response_url),
                              timeout)[:answers]

    def interaction(self, payload: dict[str, Any], **kwargs: Any) -> requests.Response:
        return self.post(urllib.parse.urlencode({"payload": json.dumps(payload)}), **kwargs)

    def button(self, action_id: str, value: str, **kwargs: Any) -> requests.Response:
        """A click on a button in a message (`button_payload`'s arguments)."""
        return self.interaction(button_payload(action_id, value, **kwargs))

    def view_submission(self, view: dict[str, Any], values: dict[str, Any], *, user: str = "U0USER",
                        **kwargs: Any) -> requests.Response:
        submitted = {**view, "id": "V0001", "state": {"values": values}}
        payload = {"type": "view_submission", "team": {"id": "T0001"}, "user": {"id": user, "name": "ada"},
                   "api_app_id": "A0001", "trigger_id": f"trigger.{time.time_ns()}", "view": submitted}
        return self.interaction(payload, **kwargs)

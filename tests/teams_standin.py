"""Local stand-ins of what a Teams bot talks to, and a client that posts Activities as Teams does.

One real HTTP server on 127.0.0.1 (port 0) plays three Microsoft services:
- the Bot Connector service (the activity's `serviceUrl`): `POST /v3/conversations/{id}/activities`
  (send), `POST .../activities/{activityId}` (reply), `PUT .../activities/{activityId}` (update).
  Every call is recorded; it answers 401 without a bearer token it issued for the bot (unless the
  bot runs anonymously), 404 for an update of an activity it never saw, and 413
  `MessageSizeTooBig` over Teams' size limit; every Adaptive Card is checked against the published
  1.5 schema (vendored: tests/data/teams/adaptive-card-1.5.schema.json) and its problems kept.
- the OpenID metadata and signing keys of the channel (login.botframework.com's role): tokens for
  requests to the bot are signed with an RSA key published here, endorsed for `msteams`.
- an App Service managed identity endpoint (`IDENTITY_ENDPOINT`), which MSAL asks for the bot's
  own token; the connector accepts only tokens issued here for the bot's app id.
It also serves files shared in a chat at their download links.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.teams.limits import CARD_VERSION, MESSAGE_BYTES, message_size
from tests.helpers import LocalServer, Served

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "teams" / "adaptive-card-1.5.schema.json"
APP_ID = "00000000-0000-4000-8000-00000000a99f"
TENANT_ID = "11111111-1111-4111-8111-111111111111"
CHANNEL_ISSUER = "https://api.botframework.com"
CONNECTOR_AUDIENCE = "https://api.botframework.com"
IDENTITY_HEADER = "test-identity-header"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
_VALIDATOR = jsonschema.Draft6Validator(json.loads(SCHEMA_PATH.read_text()))


def card_problems(content: Any, where: str) -> list[str]:
    """What is wrong with an Adaptive Card for Teams: the 1.5 schema, and the version."""
    problems = [f"{where}: {e.message} at {'/'.join(str(p) for p in e.absolute_path)}"
                for e in _VALIDATOR.iter_errors(content)]
    version = str((content or {}).get("version", "")) if isinstance(content, dict) else ""
    if version and tuple(int(p) for p in version.split(".")) > tuple(int(p) for p in CARD_VERSION.split(".")):
        problems.append(f"{where}: version {version} is newer than {CARD_VERSION}")
    return problems


def activity_cards(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [a.get("content") for a in activity.get("attachments") or [] if a.get("contentType") == CARD_TYPE]


def _key(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "use": "sig", "alg": "RS256"}


@dataclass
class ConnectorCall:
    verb: str  # send, reply or update
    conversation: str
    activity_id: str | None
    activity: dict[str, Any]
    headers: dict[str, str]
    result_id: str  # the id the service gave the activity (a send's new message)

    @property
    def cards(self) -> list[dict[str, Any]]:
        return activity_cards(self.activity)


@dataclass
class TeamsStandIn(Served):
    require_auth: bool = True
    calls: list[ConnectorCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    refused: list[tuple[int, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses the next connector calls answer with
    server: LocalServer | None = None
    _activities: dict[str, str] = field(default_factory=dict)  # activity id -> conversation
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.channel_key, self.channel_jwk = _key("channel-key-1")
        self.identity_key, _ = _key("identity-key-1")

    # ------------------------------------------------------------------ lifecycle

    def routes(self) -> dict[str, Any]:
        return {"GET": self._get, "POST": lambda request: self._connector(request, "POST"),
                "PUT": lambda request: self._connector(request, "PUT")}

    @property
    def url(self) -> str:
        return self.origin

    @property
    def service_url(self) -> str:
        """Where the bot's replies go, with the trailing slash Teams' service URLs carry."""
        return f"{self.url}/teams/"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/openid/.well-known/openidconfiguration"

    @property
    def identity_endpoint(self) -> str:
        return f"{self.url}/msi/token"

    # ------------------------------------------------------------------ tokens

    def channel_token(self, *, service_url: str | None = None, audience: str = APP_ID, expired: bool = False,
                      forged: bool = False) -> str:
        """A token as the Bot Connector signs requests to the bot; `forged` signs it with another
        key under the published key id, `expired` has it run out ten minutes ago."""
        now = int(time.time())
        claims = {"iss": CHANNEL_ISSUER, "aud": audience, "serviceurl": service_url or self.service_url,
                  "nbf": now - 60, "iat": now - 60, "exp": now - 600 if expired else now + 3600}
        key = _key("channel-key-1")[0] if forged else self.channel_key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "channel-key-1"})

    def _identity_token(self, resource: str, client_id: str) -> str:
        now = int(time.time())
        claims = {"iss": f"https://sts.windows.net/{TENANT_ID}/", "aud": resource, "appid": client_id,
                  "nbf": now - 60, "exp": now + 3600, "ver": "1.0"}
        return jwt.encode(claims, self.identity_key, algorithm="RS256", headers={"kid": "identity-key-1"})

    def _bot_authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        try:
            claims = jwt.decode(token, self.identity_key.public_key(), algorithms=["RS256"],
                                audience=CONNECTOR_AUDIENCE)
        except jwt.PyJWTError:
            return False
        return claims.get("appid") == APP_ID

    # ------------------------------------------------------------------ files

    def share_file(self, name: str, content: bytes) -> dict[str, Any]:
        """A file shared in a chat, as the attachment Teams puts in the message."""
        file_id = secrets.token_hex(6)
        self.files[file_id] = content
        return {"contentType": "application/vnd.microsoft.teams.file.download.info", "name": name,
                "contentUrl": f"{self.url}/files/{file_id}",
                "content": {"downloadUrl": f"{self.url}/files/{file_id}", "uniqueId": file_id,
                            "fileType": Path(name).suffix.lstrip("."), "fileSize": len(content)}}

    # ------------------------------------------------------------------ recorded calls

    def of(self, verb: str) -> list[ConnectorCall]:
        with self._lock:
            return [c for c in self.calls if c.verb == verb]

    def wait_for(self, predicate, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the Bot Connector stand-in saw no such call in {timeout}s; it saw "
                             f"{[(c.verb, c.activity.get('summary') or c.activity.get('text')) for c in self.calls]}")

    # ------------------------------------------------------------------ HTTP

    def _get(self, handler: BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        if url.path == "/openid/.well-known/openidconfiguration":
            self.answer(handler, 200, {"issuer": CHANNEL_ISSUER, "jwks_uri": f"{self.url}/openid/keys",
                                        "id_token_signing_alg_values_supported": ["RS256"],
                                        "token_endpoint_auth_methods_supported": ["private_key_jwt"]})
        elif url.path == "/openid/keys":
            self.answer(handler, 200, {"keys": [{**self.channel_jwk, "endorsements": ["msteams"]}]})
        elif url.path == "/msi/token":
            query = dict(urllib.parse.parse_qsl(url.query))
            if handler.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                self.answer(handler, 401, {"error": "invalid identity header"})
                return
            resource = query.get("resource", "")
            client_id = query.get("client_id", "")
            self.answer(handler, 200, {"access_token": self._identity_token(resource, client_id),
                                        "expires_on": str(int(time.time()) + 3600), "resource": resource,
                                        "token_type": "Bearer", "client_id": client_id})
        elif url.path.startswith("/files/") and url.path.removeprefix("/files/") in self.files:
            self.answer(handler, 200, self.files[url.path.removeprefix("/files/")], "application/octet-stream")
        else:
            self.answer(handler, 404, {"error": {"code": "NotFound", "message": url.path}})

    def _connector(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urllib.parse.urlsplit(handler.path).path.strip("/").split("/")
        # teams / v3 / conversations / {conversation} / activities [/ {activity}]
        if parts[:3] != ["teams", "v3", "conversations"] or len(parts) < 5 or parts[4] != "activities":
            self.answer(handler, 404, {"error": {"code": "NotFound", "message": handler.path}})
            return
        conversation = urllib.parse.unquote(parts[3])
        activity_id = urllib.parse.unquote(parts[5]) if len(parts) > 5 else None
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if self.require_auth and not self._bot_authorized(handler.headers.get("Authorization", "")):
            self.refused.append((401, handler.path))
            self.answer(handler, 401, {"error": {"code": "Unauthorized", "message": "token missing or not the bot's"}})
            return
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            self.refused.append((failure, handler.path))
            self.answer(handler, failure, {"error": {"code": "ServiceUnavailable" if failure >= 500 else "BadRequest"}})
            return
        activity = json.loads(body or b"{}")
        verb = "update" if method == "PUT" else ("reply" if activity_id else "send")
        size = message_size(activity)
        if size > MESSAGE_BYTES:
            self.refused.append((413, handler.path))
            self.answer(handler, 413, {"error": {"code": "MessageSizeTooBig",
                                                  "message": f"{size} bytes over {MESSAGE_BYTES}"}})
            return
        with self._lock:
            if verb == "update" and self._activities.get(activity_id) != conversation:
                self.answer(handler, 404, {"error": {"code": "ActivityNotFoundInConversation"}})
                return
            for index, content in enumerate(activity_cards(activity)):
                self.problems += card_problems(content, f"{verb} card {index} of {conversation}")
            new_id = activity_id if verb == "update" else f"1{int(time.time() * 1000)}{secrets.token_hex(2)}"
            self._activities[new_id] = conversation
            self.calls.append(ConnectorCall(verb, conversation, activity_id, activity, dict(handler.headers), new_id))
        self.answer(handler, 200, {"id": new_id})


@dataclass
class TeamsUser:
    aad_object_id: str
    name: str

    @property
    def mri(self) -> str:
        return f"29:{self.aad_object_id}"


class TeamsSender:
    """Posts Activities to the bot's `/api/messages` the way Teams does: JSON, with a channel token."""

    def __init__(self, bot_url: str, standin: TeamsStandIn, user: TeamsUser, *, conversation: str = "a:personal-1",
                 conversation_type: str = "personal"):
        self.bot_url, self.standin, self.user = bot_url, standin, user
        self.conversation, self.conversation_type = conversation, conversation_type

    def activity(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {
            "type": kind, "id": f"f:{secrets.token_hex(6)}", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "serviceUrl": self.standin.service_url, "channelId": "msteams",
            "from": {"id": self.user.mri, "name": self.user.name, "aadObjectId": self.user.aad_object_id},
            "recipient": {"id": f"28:{APP_ID}", "name": "fmbot"},
            "conversation": {"id": self.conversation, "conversationType": self.conversation_type,
                             "tenantId": TENANT_ID},
            "channelData": {"tenant": {"id": TENANT_ID}}, "locale": "en-US", **fields,
        }

    def post(self, activity: dict[str, Any], token: str | None = "valid") -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token == "valid":
            token = self.standin.channel_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.post(self.bot_url, data=json.dumps(activity), headers=headers, timeout=60)
        if response.ok and response.content:
            self._check_invoke_cards(response.json())
        return response

    def message(self, text: str, *, attachments: list[dict[str, Any]] | None = None, **kw: Any) -> requests.Response:
        fields: dict[str, Any] = {"text": text, "textFormat": "plain"}
        if attachments:
            fields["attachments"] = attachments
        return self.post(self.activity("message", **fields), **kw)

    def invoke(self, name: str, value: dict[str, Any], **kw: Any) -> requests.Response:
        return self.post(self.activity("invoke", name=name, value=value), **kw)

    def execute(self, verb: str, data: dict[str, Any], *, trigger: str = "manual") -> requests.Response:
        return self.invoke("adaptiveCard/action", {"action": {"type": "Action.Execute", "verb": verb, "data": data},
                                                   "trigger": trigger})

    def task_fetch(self, data: dict[str, Any]) -> requests.Response:
        return self.invoke("task/fetch", {"data": data, "context": {"theme": "default"}})

    def task_submit(self, card: dict[str, Any], inputs: dict[str, Any]) -> requests.Response:
        """Press the dialog card's submit button: Teams merges the inputs into its data."""
        data = dict(card["actions"][0]["data"])
        return self.invoke("task/submit", {"data": {**data, **inputs}, "context": {"theme": "default"}})

    def _check_invoke_cards(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        task = (body.get("task") or {}).get("value") or {}
        card = (task.get("card") or {}).get("content") if isinstance(task, dict) else None
        if body.get("type") == CARD_TYPE:
            card = body.get("value")
        if card is not None:
            self.standin.problems += card_problems(card, "invoke response card")
            if message_size(card) > MESSAGE_BYTES:
                self.standin.problems.append(f"invoke response card is {message_size(card)} bytes")

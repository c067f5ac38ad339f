"""A local stand-in of Microsoft Graph's `checkMemberGroups` for the Teams bot's Entra group rules.

`POST /v1.0/users/{id}/checkMemberGroups` (and `/directoryObjects/{id}/...`) answers as Graph's
published example does (tests/data/teams/graph-checkmembergroups.*.json, vendored byte for byte; see
SOURCES.md): `{"@odata.context": ..., "value": [the asked ids the object is a member of]}`, at most
20 ids a request (400 over that), 404 for an unknown object. It accepts only app-only tokens the
Teams stand-in's managed identity issued to the bot for this host, as Graph checks its audience;
`status` set answers every call with it (503: Graph down). Every call is recorded.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import jwt

from tests.helpers import LocalServer, Served
from tests.teams_standin import APP_ID, TeamsStandIn

EXAMPLES = Path(__file__).resolve().parent / "data" / "teams"
CONTEXT = json.loads((EXAMPLES / "graph-checkmembergroups.response.json").read_text())["@odata.context"]


@dataclass
class GraphStandIn(Served):
    teams: TeamsStandIn  # whose managed identity signs the bot's Graph tokens
    members: dict[str, set[str]] = field(default_factory=dict)  # object id -> groups it is in (transitively)
    status: int | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    server: LocalServer | None = None

    def routes(self) -> dict[str, Any]:
        return {"POST": self._post}

    @property
    def url(self) -> str:
        return f"{self.origin}/v1.0"

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        try:
            claims = jwt.decode(token, self.teams.identity_key.public_key(), algorithms=["RS256"],
                                audience=f"http://127.0.0.1:{self.server.port}")
        except jwt.PyJWTError:
            return False
        return scheme.lower() == "bearer" and claims.get("appid") == APP_ID

    def _post(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path).path.strip("/").split("/")
        body = json.loads(handler.rfile.read(int(handler.headers.get("Content-Length") or 0)) or b"{}")
        self.calls.append({"path": handler.path, "body": body})
        if len(parts) != 4 or parts[0] != "v1.0" or parts[1] not in ("users", "directoryObjects") \
                or parts[3] != "checkMemberGroups":
            self.answer(handler, 404, {"error": {"code": "Request_ResourceNotFound", "message": handler.path}})
        elif not self._authorized(handler.headers.get("Authorization", "")):
            self.answer(handler, 401, {"error": {"code": "InvalidAuthenticationToken", "message": "Access token is invalid."}})
        elif self.status is not None:
            self.answer(handler, self.status, {"error": {"code": "serviceNotAvailable", "message": "down"}})
        elif not isinstance(body.get("groupIds"), list) or len(body["groupIds"]) > 20:
            self.answer(handler, 400, {"error": {"code": "Request_BadRequest", "message": "groupIds: 1 to 20 ids"}})
        elif urllib.parse.unquote(parts[2]) not in self.members:
            self.answer(handler, 404, {"error": {"code": "Request_ResourceNotFound", "message": parts[2]}})
        else:
            mine = self.members[urllib.parse.unquote(parts[2])]
            self.answer(handler, 200, {"@odata.context": CONTEXT, "value": [g for g in body["groupIds"] if g in mine]})

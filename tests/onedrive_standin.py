"""A stand-in of OneDrive's upload sessions, where a Teams bot puts a file the user consented to.

Teams makes the session when the user accepts a FileConsentCard and hands its URL to the bot in
the `fileConsent/invoke` (tests/data/teams/file-consent-invoke-accept.json). Each `PUT` carries one
byte range (`Content-Range: bytes a-b/total`), answered as Microsoft Graph's "driveItem:
createUploadSession" page says: `202 Accepted` with `nextExpectedRanges` while bytes are missing,
`201 Created` with the driveItem once the last range is in, `416` for a range that is not the next
one, `401` for a PUT with an Authorization header, and a different total than the first range's
fails. The bodies are the page's examples (vendored), with this session's values; every PUT and
every session's bytes are recorded.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.helpers import LocalServer, Served

DATA = Path(__file__).resolve().parent / "data" / "teams"
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def published(name: str) -> dict[str, Any]:
    """One vendored example; the docs' FileInfoCard has a trailing comma JSON does not allow."""
    return json.loads(re.sub(r",(\s*})", r"\1", (DATA / name).read_text()))


@dataclass
class Session:
    id: str
    name: str
    content: bytearray = field(default_factory=bytearray)
    total: int | None = None
    done: bool = False


@dataclass
class Put:
    session: str
    content_range: str
    status: int
    headers: dict[str, str]


@dataclass
class OneDriveStandIn(Served):
    sessions: dict[str, Session] = field(default_factory=dict)
    puts: list[Put] = field(default_factory=list)
    server: LocalServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self) -> dict[str, Any]:
        return {"PUT": self._put}

    @property
    def url(self) -> str:
        return self.origin

    def upload_info(self, name: str) -> dict[str, Any]:
        """A new session for `name`, as the published accept invoke's `uploadInfo` describes it."""
        session = Session(id=secrets.token_hex(8).upper(), name=name)
        self.sessions[session.id] = session
        info = dict(published("file-consent-invoke-accept.json")["value"]["uploadInfo"])
        info.update(name=name, uploadUrl=f"{self.url}/up/{session.id}", uniqueId=session.id,
                    contentUrl=f"{self.url}/personal/documents/{name}", fileType=Path(name).suffix.lstrip("."))
        return info

    def uploaded(self, info: dict[str, Any]) -> bytes | None:
        session = self.sessions[info["uniqueId"]]
        return bytes(session.content) if session.done else None

    def _put(self, handler: BaseHTTPRequestHandler) -> None:
        session = self.sessions.get(handler.path.removeprefix("/up/"))
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        content_range = handler.headers.get("Content-Range", "")
        status, answer = self._range(session, content_range, body, handler.headers.get("Authorization"))
        with self._lock:
            self.puts.append(Put(session.id if session else handler.path, content_range, status, dict(handler.headers)))
        self.answer(handler, status, answer)

    def _range(self, session: Session | None, content_range: str, body: bytes,
               authorization: str | None) -> tuple[int, dict[str, Any]]:
        if session is None or session.done:
            return 404, {"error": {"code": "itemNotFound", "message": "The upload session was not found"}}
        if authorization:
            return 401, {"error": {"code": "unauthenticated", "message": "No Authorization header on a PUT"}}
        match = _RANGE.match(content_range)
        if match is None:
            return 400, {"error": {"code": "invalidRequest", "message": f"Content-Range {content_range!r}"}}
        start, end, total = (int(g) for g in match.groups())
        if session.total not in (None, total) or end >= total or end - start + 1 != len(body):
            return 400, {"error": {"code": "invalidRange", "message": f"{content_range} with {len(body)} bytes"}}
        if start != len(session.content):
            return 416, {"error": {"code": "invalidRange", "message": "Requested Range Not Satisfiable"}}
        session.total = total
        session.content += body
        if len(session.content) < total:
            partial = published("graph-uploadsession-partial.response.json")
            return 202, {**partial, "nextExpectedRanges": [f"{len(session.content)}-"]}
        session.done = True
        return 201, {**published("graph-uploadsession-final.response.json"), "id": session.id, "name": session.name,
                     "size": total}

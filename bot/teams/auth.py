"""Checking the token on every request Teams sends, the way the Bot Connector service requires.

The Bot Framework's authentication spec (bot connector → bot): the `Authorization: Bearer` JWT is
signed with a key published by the OpenID metadata document (`TEAMS_OPENID_METADATA_URL`, by
default login.botframework.com's); its issuer is that document's `issuer`; its audience is the
bot's app id; it has not expired (five minutes of clock skew allowed); the signing key endorses the
activity's channel (`msteams`); and its `serviceurl` claim is the activity's `serviceUrl`, so a
token cannot send the bot's replies (and its own token) to a host of the caller's choosing.

The SDK's own `JwtTokenValidator` checks signature, lifetime and audience, but reads its keys from
fixed Microsoft URLs, checks the issuer only on request and neither the endorsement nor the
`serviceUrl`; this middleware does all of it and then hands the SDK its `ClaimsIdentity`, the
same object the SDK's middleware would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import jwt
import requests
from aiohttp import web
from microsoft_agents.hosting.core.authorization import ClaimsIdentity

log = logging.getLogger(__name__)
CLOCK_SKEW_SECONDS = 300  # the spec's allowance
KEYS_TTL_SECONDS = 24 * 3600  # the spec: refresh the keys at least daily, and when a kid is unknown
_UNAUTHORIZED = {"error": "Invalid token or authentication failed."}


class TokenRejected(Exception):
    pass


class OpenIdKeys:
    """The issuer and signing keys published at an OpenID metadata URL, refreshed once a day or
    when a token names a key id not seen yet (Microsoft rolls keys without notice)."""

    def __init__(self, metadata_url: str):
        self.metadata_url = metadata_url
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched = 0.0

    def _refresh(self) -> None:
        metadata = requests.get(self.metadata_url, timeout=10).json()
        jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
        self._issuer = metadata["issuer"]
        self._keys = {key["kid"]: key for key in jwks.get("keys", []) if "kid" in key}
        self._fetched = time.monotonic()

    def lookup(self, kid: str) -> tuple[str, dict[str, Any]]:
        with self._lock:
            stale = time.monotonic() - self._fetched > KEYS_TTL_SECONDS
            if stale or kid not in self._keys:
                self._refresh()
            if kid not in self._keys:
                raise TokenRejected(f"unknown signing key {kid!r}")
            return self._issuer, self._keys[kid]


class TeamsTokenValidator:
    def __init__(self, app_id: str, metadata_url: str):
        self.app_id, self.keys = app_id, OpenIdKeys(metadata_url)

    def validate(self, token: str, activity: dict[str, Any]) -> dict[str, Any]:
        """The token's claims, or TokenRejected saying why (logged, never told to the caller)."""
        try:
            header = jwt.get_unverified_header(token)
            issuer, jwk = self.keys.lookup(str(header.get("kid")))
            claims = jwt.decode(token, key=jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=self.app_id,
                                issuer=issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, requests.RequestException, KeyError, ValueError) as exc:
            raise TokenRejected(f"{type(exc).__name__}: {exc}") from None
        channel = activity.get("channelId")
        if "endorsements" in jwk and channel not in jwk["endorsements"]:
            raise TokenRejected(f"the signing key does not endorse channel {channel!r}")
        if str(claims.get("serviceurl", "")).rstrip("/") != str(activity.get("serviceUrl", "")).rstrip("/"):
            raise TokenRejected("the token's serviceurl claim is not the activity's serviceUrl")
        return claims


def middleware(validator: TeamsTokenValidator | None):
    """aiohttp middleware for `/api/messages`: 401 unless the token checks out. `validator` None is
    the `--dev` mode: no token is asked for and the SDK runs anonymously (Agents Playground)."""

    @web.middleware
    async def check_token(request: web.Request, handler):
        if request.path != "/api/messages":
            return await handler(request)
        if validator is None:
            request["claims_identity"] = ClaimsIdentity({}, authentication_type="anonymous")
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise TokenRejected("no bearer token")
            activity = json.loads(await request.read())
            if not isinstance(activity, dict):
                raise TokenRejected("the body is not an activity")
            claims = await asyncio.to_thread(validator.validate, token.strip(), activity)
        except (TokenRejected, json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("refused a request to /api/messages: %s", exc)
            return web.json_response(_UNAUTHORIZED, status=401)
        request["claims_identity"] = ClaimsIdentity(claims, authentication_type="Bearer", security_token=token.strip())
        return await handler(request)

    return check_token

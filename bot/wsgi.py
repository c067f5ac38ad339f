"""HTTP serving: the Bolt app under waitress (a production WSGI server), next to health checks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.observability import ACK_SECONDS, Readiness, metrics_page

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# Slack's largest deliveries (a submitted form's state) are tens of KB; waitress refuses a bigger
# body while reading it, before Bolt buffers it to check the signature (waitress's default is 1 GB).
MAX_BODY_BYTES = 1024 * 1024


class InFlight:
    """The Slack requests this process is acking right now. Work after an ack (`SlackContext.after_ack`)
    first waits until there are none, for a bounded time: Python runs one thread at a time, so an ack
    that arrives while an answer renders waits for it, and in a burst of commands every ack would
    wait behind the answers of those before it. Acks go first; answers fill the gaps."""

    def __init__(self) -> None:
        self._count = 0
        self._changed = threading.Condition()

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._changed:
            self._count += 1
        try:
            yield
        finally:
            with self._changed:
                self._count -= 1
                if self._count == 0:
                    self._changed.notify_all()

    def wait_idle(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._count == 0, timeout)


IN_FLIGHT = InFlight()


def wsgi_app(app: App | None, readiness: Readiness | None = None) -> WSGIApp:
    """`/healthz` says the process is up; `/readyz` and `/metrics` need `readiness` (Redis + Slack).
    Without `app` only these are served (Socket Mode, where Slack's requests come over the socket)."""
    slack = SlackRequestHandler(app, path="/slack/events") if app is not None else None

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz" and readiness is not None:
            failed = readiness.problems()
            start_response("503 Service Unavailable" if failed else "200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"ready": not failed, "failed": failed}).encode()]
        if path == "/metrics" and readiness is not None:
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [metrics_page(readiness.redis)]
        if slack is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        started = time.perf_counter()
        try:
            with IN_FLIGHT.request():
                return slack(environ, start_response)
        finally:
            ACK_SECONDS.observe(time.perf_counter() - started)

    return application


def make_server(application: WSGIApp, host: str, port: int, *, threads: int) -> Any:
    """A waitress server; port 0 picks a free port (read it back from `.effective_port`)."""
    from waitress.server import create_server

    return create_server(application, host=host, port=port, threads=threads, ident="fmbot",
                         max_request_body_size=MAX_BODY_BYTES)

"""HTTP serving: the Bolt app under waitress (a production WSGI server), next to health checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def wsgi_app(app: App) -> WSGIApp:
    slack = SlackRequestHandler(app, path="/slack/events")

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return slack(environ, start_response)

    return application


def make_server(application: WSGIApp, host: str, port: int, *, threads: int = 16) -> Any:
    """A waitress server; port 0 picks a free port (read it back from `.effective_port`)."""
    from waitress.server import create_server

    return create_server(application, host=host, port=port, threads=threads, ident="fmbot")

"""What tests call directly, written once: waits, `fmbot` as a user runs it, a job that fails at once.

Fixtures (a private Redis, the stand-ins, bots and workers) live in conftest.py; the Slack and Teams
senders live beside their stand-ins (`SlackSender.command`, `.button`, `.view_submission`).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bot.settings import Settings
from handlers.evaluate import EvaluateRequest
from platforms.base import DataRef, EvaluateSpec
from platforms.tasks import Task
from tests.worker_process import ROOT, settings_env
from workers.ledger import JobRecord, Ledger, ReplyTarget

DATA = Path(__file__).resolve().parent / "data"
__all__ = ["DATA", "ROOT", "LocalServer", "doomed_evaluation", "final_record", "fmbot", "fmbot_json", "settings_env", "wait_until"]
Answer = Callable[[BaseHTTPRequestHandler], None]


class _Listening(ThreadingHTTPServer):
    """socketserver's listen backlog is 5: a sixth connection arriving at once is reset, which no real
    service does (50 jobs notifying at once made slack_sdk retry resets for seconds)."""

    request_queue_size = 128


class LocalServer:
    """A quiet HTTP(S) server on a free port of 127.0.0.1, on a thread of its own, that hands each
    request to `answer[method]`: what every stand-in (Slack, Teams, Azure) and test host is served by."""

    def __init__(self, answer: dict[str, Answer], *, tls: tuple[Path, Path] | None = None,
                 protocol: str = "HTTP/1.0"):
        handler = type("Handler", (BaseHTTPRequestHandler,), {
            "protocol_version": protocol, "log_message": lambda self, *args: None,
            **{f"do_{method}": (lambda call: lambda self: call(self))(call) for method, call in answer.items()}})
        self.server = _Listening(("127.0.0.1", 0), handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Served:
    """A stand-in answered by one LocalServer on 127.0.0.1: `routes` names the handler of each method."""

    server: LocalServer | None

    def routes(self) -> dict[str, Answer]:
        raise NotImplementedError

    def start(self):
        self.server = LocalServer(self.routes())
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @staticmethod
    def answer(handler: BaseHTTPRequestHandler, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


SLOW_SECONDS = 4.0  # a remote check made slow: longer than Slack's 3 s for an ack


def slowed(monkeypatch, target: Any, *names: str, seconds: float = SLOW_SECONDS) -> None:
    """Make each named method of `target` (a platform) wait `seconds` before doing its work, as a
    remote call on a bad day does."""
    for name in names:
        def slow(*args, _real=getattr(target, name), **kwargs):
            time.sleep(seconds)
            return _real(*args, **kwargs)
        monkeypatch.setattr(target, name, slow)


def wait_until(predicate, timeout: float = 120.0, interval: float = 0.2, *, about=lambda: "") -> Any:
    """Poll `predicate` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s {about()}")


def final_record(ledger: Ledger, job_id: str, timeout: float = 120.0, *, about=lambda: "") -> JobRecord:
    """The job's record once it has completed, failed or been canceled."""
    return wait_until(lambda: (r := ledger.get(job_id)).state.final and r, timeout, about=about)


def fmbot(settings: Settings, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`fmbot ARGV` in a process of its own, configured by the environment as a shell would be."""
    return subprocess.run([sys.executable, "-m", "bot.cli", *argv], env=settings_env(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def fmbot_json(settings: Settings, *argv: str, timeout: float = 300) -> Any:
    """`fmbot ARGV --json`, which must succeed, parsed."""
    done = fmbot(settings, *argv, "--json", timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return json.loads(done.stdout)


def doomed_evaluation(*, requester: str = "U0USER", channel: str | None = "C0CHAN", compute: str | None = None,
                      instances: int = 1) -> EvaluateRequest:
    """An evaluation of a model that is not there: it fails within a second of starting, so a test
    measures the fault it plays, not the work."""
    return EvaluateRequest(
        spec=EvaluateSpec(model="no-such-model:1", task=Task.TEXT_CLASSIFICATION, mapping={},
                          test=DataRef(path="/nowhere.jsonl", name="t.jsonl"), compute=compute, instances=instances),
        requester=requester, reply_to=ReplyTarget(channel=channel) if channel else None)

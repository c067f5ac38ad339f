"""ack_latency: time from a signed `/fm` request arriving to its ack, fmbot vs a bare Bolt app.

Both apps run at once in this process, each under fmbot's server stack (`bot.wsgi.wsgi_app`
under waitress from `bot.wsgi.make_server`, `FMBOT_HTTP_THREADS` threads) and the same timing
middleware; the bare app's listener only calls `ack()`. fmbot answers `/fm search minilm` (the seeded catalog) and `/fm jobs` (20 ledger
records in a private Redis), which do real handler work in the ack. Clients run in a separate
process, so their threads never hold this process's GIL; each sends Slack-signed form bodies over
keep-alive HTTP on loopback, as Slack does.

Server-side time is what fmbot controls; client-side time adds waitress's queue and the network,
and is what Slack's 3-second limit sees, so the burst counts acks over 3 s on the client side.

Clients send back to back (a closed loop), so a faster server is also sent more: the bare app's
listener is polled for its ack every 10 ms, which caps what its clients can send, while fmbot
(`process_before_response=True`) answers in well under a millisecond and its clients then keep the
two cores busy. Requests per second are printed beside the closed-loop rows, and the same client
counts are run once more paced to one request rate for both apps (equal offered load).
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.common import Result, log, main, median, percentile, slack_settings

NAME = "ack_latency"
COMMANDS = ("search minilm", "jobs")
SLACK_LIMIT_S = 3.0
PACED_RATE = 200.0
HEAVY = ("torch", "transformers", "pandas", "matplotlib", "azure.ai.ml", "sklearn")


class Timed:
    """WSGI middleware: seconds from the app being called (waitress has read the request) to the
    answer being produced, the same wrapper around both apps."""

    def __init__(self, inner: Callable[..., Iterable[bytes]]):
        self.inner = inner
        self.seconds: list[float] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        started = time.perf_counter()
        body = list(self.inner(environ, start_response))
        self.seconds.append(time.perf_counter() - started)
        return body


def drive(url: str, clients: int, per_client: int, rate: float | None = None) -> list[tuple[float, int]]:
    """Run in the client process: `clients` threads send `per_client` commands each, released at
    once, back to back or (with `rate`) on a schedule that sums to `rate` requests per second;
    returns (client-side seconds, HTTP status) per request, status 0 for a failed one."""
    import requests

    from tests.slack_standin import SlackSender

    start = threading.Barrier(clients)
    results: list[tuple[float, int]] = []

    def client(index: int) -> None:
        sender = SlackSender(url)
        start.wait()
        first = time.perf_counter() + (index / rate if rate else 0.0)
        for n in range(per_client):
            if rate:
                time.sleep(max(0.0, first + n * clients / rate - time.perf_counter()))
            began = time.perf_counter()
            try:
                status = sender.command(COMMANDS[(index + n) % len(COMMANDS)]).status_code
            except requests.RequestException:
                status = 0
            results.append((time.perf_counter() - began, status))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class Served:
    def __init__(self, name: str, app: Any, threads: int):
        from bot.wsgi import make_server, wsgi_app

        self.name = name
        self.timed = Timed(wsgi_app(app))
        self.server = make_server(self.timed, "127.0.0.1", 0, threads=threads)
        threading.Thread(target=self.server.run, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}/slack/events"

    def load(self, pool: Any, clients: int, per_client: int,
             rate: float | None = None) -> tuple[list[float], list[tuple[float, int]], float]:
        """Server-side seconds, client-side (seconds, status) and requests per second served."""
        self.timed.seconds.clear()
        started = time.perf_counter()
        client_side = pool.apply(drive, (self.url, clients, per_client, rate))
        return list(self.timed.seconds), client_side, len(client_side) / (time.perf_counter() - started)


def check_statuses(name: str, client_side: list[tuple[float, int]]) -> None:
    failed = sum(1 for _, status in client_side if status != 200)
    if failed:
        raise RuntimeError(f"{name}: {failed} of {len(client_side)} requests failed")


def bare_app(settings: Any, client: Any) -> Any:
    """The floor: Bolt as its documentation sets it up for an HTTP server (process_before_response
    off, the default outside FaaS), with a listener that only acks."""
    from slack_bolt import App

    app = App(client=client, signing_secret=settings.secret(settings.slack_signing_secret),
              token_verification_enabled=False, process_before_response=False)

    @app.command("/fm")
    def on_fm(ack):
        ack()

    return app


def add_jobs(runtime: Any, user: str, count: int) -> None:
    from workers.ledger import JobRecord, ReplyTarget, new_job_id

    for _ in range(count):
        runtime.ledger.create(JobRecord(
            id=new_job_id("finetune"), kind="finetune", model="all-MiniLM-L6-v2:1", task="text-classification",
            spec={}, requester=user, reply_to=ReplyTarget(channel="C0CHAN", thread_ts="1.000001"),
        ))


def check_answers(url: str) -> str:
    """fmbot must really answer (not error) for the timing to mean anything; returns a note naming
    any heavy library the request path imported."""
    from tests.slack_standin import SlackSender

    sender = SlackSender(url)
    search, jobs = sender.command("search minilm"), sender.command("jobs")
    if "MiniLM" not in search.text or "ft-" not in jobs.text:
        raise RuntimeError(f"fmbot did not answer as expected: {search.text[:300]} / {jobs.text[:300]}")
    heavy = [name for name in HEAVY if name in sys.modules]
    return f"request path imported {', '.join(heavy)}" if heavy else "no heavy imports on the request path"


def run(quick: bool) -> list[Result]:
    from bot.redis_server import private_redis
    from bot.bootstrap import build_runtime
    from bot.slack.app import create_app
    from bot.slack.client import web_client
    from tests.slack_standin import SlackStandIn

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    rounds = 1 if quick else 3
    levels = {1: 10, 20: 2, 100: 1} if quick else {1: 150, 20: 15, 100: 4}
    paced = {20: 4, 100: 1} if quick else {20: 30, 100: 6}
    burst = 50 if quick else 500
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fmbot-bench-ack-")))
        redis = stack.enter_context(private_redis())
        standin = SlackStandIn().start()
        stack.callback(standin.stop)
        settings = slack_settings(redis.url, standin.api_url, root, seed_models=True)
        runtime = build_runtime(settings)
        add_jobs(runtime, "U0USER", 20)
        fmbot = Served("fmbot", create_app(settings, runtime, web_client(settings)), settings.fmbot_http_threads)
        bare = Served("bare Bolt app", bare_app(settings, web_client(settings)), settings.fmbot_http_threads)
        for served in (fmbot, bare):
            stack.callback(served.server.close)
        imports_note = check_answers(fmbot.url)
        pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(1))
        for served in (fmbot, bare):
            served.load(pool, 4, 10)

        server_p: dict[tuple[str, int, int], list[float]] = {}
        client_p: dict[tuple[str, int, int], list[float]] = {}
        served_rate: dict[tuple[str, int], list[float]] = {}
        paced_p99: dict[tuple[str, int], list[float]] = {}
        slow: dict[str, list[float]] = {"fmbot": [], "bare Bolt app": []}
        for round_ in range(rounds):
            for clients, per_client in levels.items():
                order = (fmbot, bare) if round_ % 2 == 0 else (bare, fmbot)
                for served in order:
                    server_side, client_side, per_second = served.load(pool, clients, per_client)
                    check_statuses(served.name, client_side)
                    served_rate.setdefault((served.name, clients), []).append(per_second)
                    for q in (50, 99):
                        server_p.setdefault((served.name, clients, q), []).append(percentile(server_side, q))
                        client_p.setdefault((served.name, clients, q), []).append(
                            percentile([s for s, _ in client_side], q))
                    log(f"{NAME} round {round_ + 1} {served.name} @{clients}: server p50 "
                        f"{percentile(server_side, 50) * 1000:.2f} ms p99 {percentile(server_side, 99) * 1000:.2f} ms")
            for clients, per_client in paced.items():
                for served in (fmbot, bare) if round_ % 2 == 0 else (bare, fmbot):
                    server_side, client_side, _ = served.load(pool, clients, per_client, PACED_RATE)
                    check_statuses(served.name, client_side)
                    paced_p99.setdefault((served.name, clients), []).append(percentile(server_side, 99))
            for served in (fmbot, bare) if round_ % 2 == 0 else (bare, fmbot):
                _, client_side, _ = served.load(pool, burst, 1)
                slow[served.name].append(sum(1 for s, status in client_side if s > SLACK_LIMIT_S or status != 200))

    results = []
    for clients in levels:
        for q in (50, 99):
            results.append(Result(
                benchmark=NAME, metric=f"server-side ack p{q} @{clients} clients", unit="ms",
                fmbot=median(server_p["fmbot", clients, q]) * 1000,
                baseline=median(server_p["bare Bolt app", clients, q]) * 1000, baseline_name="bare Bolt app",
                target=1.2 if q == 99 else None,
                note=imports_note if (clients, q) == (1, 50) else (
                    f"closed loop: fmbot served {median(served_rate['fmbot', clients]):,.0f} req/s, the bare app "
                    f"{median(served_rate['bare Bolt app', clients]):,.0f}" if q == 99 and clients > 1 else ""),
            ))
        results.append(Result(
            benchmark=NAME, metric=f"client-side ack p99 @{clients} clients", unit="ms",
            fmbot=median(client_p["fmbot", clients, 99]) * 1000,
            baseline=median(client_p["bare Bolt app", clients, 99]) * 1000, baseline_name="bare Bolt app",
        ))
    for clients in paced:
        results.append(Result(
            benchmark=NAME, metric=f"server-side ack p99 @{clients} clients paced to {PACED_RATE:g} req/s in all",
            unit="ms", fmbot=median(paced_p99["fmbot", clients]) * 1000,
            baseline=median(paced_p99["bare Bolt app", clients]) * 1000, baseline_name="bare Bolt app",
            note="context: equal offered load for both apps",
        ))
    results.append(Result(
        benchmark=NAME, metric=f"acks over {SLACK_LIMIT_S:g} s in a {burst}-command burst", unit="acks",
        fmbot=max(slow["fmbot"]), baseline=max(slow["bare Bolt app"]), baseline_name="bare Bolt app",
        limit=0, note="worst round",
    ))
    return results


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

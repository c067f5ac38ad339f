"""The local endpoint server: `python -m platforms.local.serving --model-dir DIR --task TASK ...`.

Process shape (pre-fork, as gunicorn does it): a small supervisor binds 127.0.0.1 once (port 0
picks a free port), then starts `--instances` serving processes that inherit that one listening
socket and each `accept()` from it; the kernel hands each connection to one of them. One shared
socket rather than SO_REUSEPORT means a serving process that dies or restarts never takes queued
connections down with it, and no front proxy adds a hop or a process to every request. Each serving
process loads the model once and runs one micro-batching thread: requests that arrive together
(up to `--max-batch-size` rows, waiting at most `--max-wait-ms` under load and never for a lone
client) go to the predictor as one call, which is what makes concurrent load cheap on CPU and GPU.

The supervisor starts in its own session (the platform detaches it), so it outlives the worker or
CLI that deployed it; it restarts a serving process that dies, and the serving processes exit when
the supervisor goes. Readiness is written to `--state-file` (port and pids) once every serving
process has loaded the model. The key never reaches these processes: they read its SHA-256 hash
from `--key-file` (see `KeyHashFile`), again whenever that file is replaced, so a rotated key is
checked from the next request on.

HTTP: `POST /score` (Azure ML request shapes, see `platforms.inputs`; `Authorization: Bearer KEY`),
`GET /health` (no key, like a liveness probe), `GET /stats` (key; predictor calls and batch sizes).
Each serving process counts the scoring requests it answered in an activity file next to the state
file, which the platform sums to tell an idle endpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from platforms.base import PlatformError
from platforms.inputs import InputError, parse_request
from platforms.local.endpoints import KeyHashFile, input_limit, predictor_module
from platforms.tasks import Task

log = logging.getLogger("fmbot.endpoint")
MAX_BODY_BYTES = 10 * 1024 * 1024
REQUEST_TIMEOUT_S = 120.0
Predictor = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class Pending(NamedTuple):
    """A request waiting for the batching thread: its rows, its answer, and when it arrived."""

    rows: list[dict[str, Any]]
    future: Future
    arrived: float


class MicroBatcher:
    """Collects concurrent requests into one predictor call.

    The thread takes the first waiting request, then keeps taking more until `max_wait` has passed
    since that first one arrived (not since it was taken: a request that queued behind a running call
    has already waited) or `max_rows` rows are gathered; requests queued while the predictor runs
    are taken at once on the next round. It waits only when the last call held several requests:
    a lone client would wait for nobody, and its requests go straight to the predictor (until
    requests queue up behind one, which turns waiting on again). Rows with different key sets
    (single texts and pairs) are predicted in separate calls, since a predictor pads one shape per
    call.

    `answered(n)` runs on the batching thread once per round, before the round's answers are released,
    with the number of requests it answered: per-round bookkeeping (the activity file) costs one write
    per batch, not one per request on the request threads.
    """

    def __init__(self, predict: Predictor, *, max_rows: int = 32, max_wait: float = 0.005,
                 answered: Callable[[int], None] = lambda n: None):
        self.predict, self.max_rows, self.max_wait, self.answered = predict, max_rows, max_wait, answered
        self.last_requests = 1
        self.pending: queue.Queue[Pending] = queue.Queue()
        self.lock = threading.Lock()
        self.calls = 0
        self.requests_per_call: Counter[int] = Counter()
        self.rows_per_call: Counter[int] = Counter()
        threading.Thread(target=self._run, name="micro-batcher", daemon=True).start()

    def submit(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        future: Future = Future()
        self.pending.put(Pending(rows, future, time.monotonic()))
        return future.result(timeout=REQUEST_TIMEOUT_S)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "predictor_calls": self.calls,
                "requests_per_call": {str(k): v for k, v in sorted(self.requests_per_call.items())},
                "rows_per_call": {str(k): v for k, v in sorted(self.rows_per_call.items())},
            }

    def _gather(self) -> list[Pending]:
        batch = [self.pending.get()]
        rows = len(batch[0].rows)
        deadline = batch[0].arrived + self.max_wait
        while rows < self.max_rows:
            try:
                item = self.pending.get_nowait()
            except queue.Empty:
                if self.last_requests == 1:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = self.pending.get(timeout=remaining)
                except queue.Empty:
                    break
            batch.append(item)
            rows += len(item.rows)
        self.last_requests = len(batch)
        return batch

    def _predict(self, batch: list[Pending], members: list[tuple[int, int]],
                 results: list[list[Any]], failed: dict[int, BaseException]) -> int:
        """Predict rows `members` ((request, row) pairs) in one call; returns the calls made.

        When a call over several requests fails, each request is retried alone, so one bad input
        (a fill-mask text without [MASK]) fails only its own request, not its batch-mates."""
        try:
            outputs = self.predict([batch[i].rows[o] for i, o in members])
        except Exception as exc:
            requests = sorted({i for i, _ in members})
            if len(requests) == 1:
                log.exception("predictor failed on one request")
                failed[requests[0]] = exc
                return 1
            return 1 + sum(self._predict(batch, [m for m in members if m[0] == i], results, failed) for i in requests)
        for (i, o), output in zip(members, outputs, strict=True):
            results[i][o] = output
        return 1

    def _run(self) -> None:
        while True:
            batch = self._gather()
            groups: dict[frozenset[str], list[tuple[int, int]]] = {}
            for index, pending in enumerate(batch):
                for offset, row in enumerate(pending.rows):
                    groups.setdefault(frozenset(row), []).append((index, offset))
            results: list[list[Any]] = [[None] * len(p.rows) for p in batch]
            failed: dict[int, BaseException] = {}
            calls = sum(self._predict(batch, members, results, failed) for members in groups.values())
            with self.lock:
                self.calls += calls
                self.requests_per_call[len(batch)] += 1
                self.rows_per_call[sum(len(p.rows) for p in batch)] += 1
            self.answered(len(batch) - len(failed))
            for index, pending in enumerate(batch):
                if index in failed:
                    pending.future.set_exception(failed[index])
                else:
                    pending.future.set_result(results[index])


class Activity:
    """The scoring requests this serving process answered, in its activity file (one per serving
    process, summed by the platform), so fmbot can tell an endpoint nobody calls. Only the batching
    thread counts, so no lock; a round is counted before its answers leave, so whoever got an answer
    finds it counted."""

    def __init__(self, path: Path | None):
        self.path, self.requests, self.last_request_at = path, 0, None

    def count(self, answered: int) -> None:
        if not answered:
            return
        self.requests += answered
        self.last_request_at = time.time()
        if self.path is not None:
            _write_state(self.path, {"requests": self.requests, "last_request_at": self.last_request_at})


class EndpointApp:
    """`parameter_keys`: request `parameters` the task module reads from each row (its
    GENERATION_KEYS, e.g. max_new_tokens); other parameters are accepted and ignored."""

    def __init__(self, *, key_hash: KeyHashFile, task: Task, model: str, batcher: MicroBatcher,
                 activity: Activity, parameter_keys: tuple[str, ...] = ()):
        self.key_hash, self.task, self.model, self.batcher = key_hash, task, model, batcher
        self.activity, self.parameter_keys = activity, parameter_keys

    def authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and self.key_hash.matches(token.strip())


def _handler(app: EndpointApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """`wbufsize`: headers and body go into one buffer that `handle_one_request` flushes as one
        send, so an answer is one system call and one packet, not two. `disable_nagle_algorithm`
        still matters for the sends that are not answers (a 100 Continue): with Nagle on, a second
        small write waits for the client's delayed ACK, 40 ms on Linux (measured: a one-row
        prediction took 48 ms on an H200, 8 ms of it work)."""

        protocol_version = "HTTP/1.1"
        server_version = "fmbot-endpoint"
        disable_nagle_algorithm = True
        wbufsize = 64 * 1024

        def handle_expect_100(self) -> bool:
            """The client waits for the 100 Continue before it sends the body: it cannot sit in the buffer."""
            going_on = super().handle_expect_100()
            self.wfile.flush()
            return going_on

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _check_key(self) -> bool:
            if app.authorized(self.headers.get("Authorization")):
                return True
            self._send(401, {"error": "missing or wrong key: send `Authorization: Bearer <endpoint key>`"},
                       {"WWW-Authenticate": "Bearer"})
            return False

        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "healthy", "pid": os.getpid(), "task": app.task, "model": app.model})
            elif self.path == "/stats":
                if self._check_key():
                    self._send(200, {"pid": os.getpid(), "requests": app.activity.requests, **app.batcher.stats()})
            else:
                self._send(404, {"error": f"no route {self.path}: use POST /score or GET /health"})

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/score":
                self._send(404, {"error": f"no route {self.path}: use POST /score"})
                return
            # The key first, and a body only of a length declared up front and within the limit: an
            # unauthenticated caller never makes the endpoint read (or wait for) a byte of body.
            if not self._check_key():
                self.close_connection = True
                return
            declared = self.headers.get("Content-Length")
            length = int(declared) if declared is not None and declared.strip().isdigit() else -1
            if length < 0:
                self._send(411, {"error": "send a Content-Length header with the body's size in bytes"})
                self.close_connection = True
                return
            if length > MAX_BODY_BYTES:
                self._send(413, {"error": f"the request is {length} bytes; send at most {MAX_BODY_BYTES}"})
                self.close_connection = True
                return
            body = self.rfile.read(length)
            try:
                rows, parameters = parse_request(json.loads(body or b"null"), app.task)
            except json.JSONDecodeError as exc:
                self._send(400, {"error": f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"})
                return
            except InputError as exc:
                self._send(400, {"error": str(exc)})
                return
            settings = {k: parameters[k] for k in app.parameter_keys if k in parameters}
            try:
                answer = app.batcher.submit([{**row, **settings} for row in rows])
            except PlatformError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:
                log.exception("scoring failed")
                self._send(500, {"error": f"the model failed on this input ({type(exc).__name__})"})
            else:
                self._send(200, answer)

    return Handler


def _serve(args: argparse.Namespace) -> int:
    """One serving process: load the model, say ready on `--ready-fd`, answer until the supervisor goes."""
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.instances))
    task = Task(args.task)
    module = predictor_module(task)
    predict = module.load_predictor(Path(args.model_dir), max_length=input_limit(Path(args.model_dir), args.max_length))
    activity = Activity(activity_file(args.state_file, os.getpid()) if args.state_file else None)
    batcher = MicroBatcher(predict, max_rows=args.max_batch_size, max_wait=args.max_wait_ms / 1000,
                           answered=activity.count)
    app = EndpointApp(key_hash=KeyHashFile(args.key_file), task=task, model=args.model, batcher=batcher,
                      activity=activity, parameter_keys=tuple(getattr(module, "GENERATION_KEYS", ())))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(app), bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=args.listen_fd)
    server.server_address = server.socket.getsockname()
    server.daemon_threads = True
    supervisor = os.getppid()

    def watch_supervisor() -> None:
        while os.getppid() == supervisor:
            time.sleep(0.5)
        log.info("supervisor %d is gone; stopping", supervisor)
        os._exit(0)

    threading.Thread(target=watch_supervisor, daemon=True).start()
    os.write(args.ready_fd, b"ready\n")
    os.close(args.ready_fd)
    log.info("serving %s (%s) on port %d, pid %d", args.model, task, server.server_address[1], os.getpid())
    server.serve_forever(poll_interval=0.5)
    return 0


def activity_file(state_file: Path, pid: int) -> Path:
    """Where serving process `pid` of the endpoint whose state is `state_file` counts its requests."""
    return state_file.with_name(f"{state_file.stem}.activity-{pid}.json")


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(path)


def _supervise(args: argparse.Namespace) -> int:
    listener = socket.create_server(("127.0.0.1", args.port), backlog=256)
    port = listener.getsockname()[1]
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    def start_one() -> tuple[subprocess.Popen, int]:
        read_end, write_end = os.pipe()
        command = [sys.executable, "-m", "platforms.local.serving", *args.passthrough,
                   "--listen-fd", str(listener.fileno()), "--ready-fd", str(write_end)]
        process = subprocess.Popen(command, pass_fds=(listener.fileno(), write_end))
        os.close(write_end)
        return process, read_end

    processes: list[subprocess.Popen] = []
    waiting: dict[int, subprocess.Popen] = {}  # ready pipe -> serving process still loading the model
    for _ in range(args.instances):
        process, fd = start_one()
        processes.append(process)
        waiting[fd] = process
    ready = False
    deadline = time.monotonic() + args.start_timeout
    while not stopping.is_set():
        readable, _, _ = select.select(list(waiting), [], [], 0.5)
        started = True
        for fd in readable:
            started = os.read(fd, 16).startswith(b"ready") and started  # end of file: it exited while loading
            os.close(fd)
            del waiting[fd]
        if not ready:
            if not started or time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                log.error("a serving process did not start; see the log above")
                break
            if not waiting:
                ready = True
                _write_state(args.state_file, {"port": port, "pid": os.getpid(), "pids": [p.pid for p in processes]})
                log.info("endpoint ready on 127.0.0.1:%d with %d serving processes", port, len(processes))
            continue
        for index, process in enumerate(processes):
            if process.poll() is not None:
                log.warning("serving process %d exited with %s; starting another", process.pid, process.returncode)
                processes[index], fd = start_one()
                waiting[fd] = processes[index]
                _write_state(args.state_file, {"port": port, "pid": os.getpid(), "pids": [p.pid for p in processes]})
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    return 0 if ready else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platforms.local.serving")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--model", required=True, help="catalog ref, for /health")
    parser.add_argument("--task", required=True)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-file", type=Path)
    parser.add_argument("--key-file", type=Path, required=True, help="the file holding the key's SHA-256 hash")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("FMBOT_LOG_LEVEL", "INFO").upper(), stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s endpoint[{os.getpid()}]: %(message)s")
    if args.listen_fd is not None:
        return _serve(args)
    args.passthrough = [
        "--model-dir", args.model_dir, "--model", args.model, "--task", args.task,
        "--instances", str(args.instances), "--max-batch-size", str(args.max_batch_size),
        "--max-wait-ms", str(args.max_wait_ms), "--max-length", str(args.max_length),
        "--key-file", str(args.key_file),
        *(["--state-file", str(args.state_file)] if args.state_file else []),
    ]
    return _supervise(args)


if __name__ == "__main__":
    sys.exit(main())

"""Local endpoints for real: detached serving processes, real HTTP, records in a real Redis.

One endpoint per task is deployed once for the module (in parallel, since each loads torch); the
tests then score every Azure ML request file in `tests/data/endpoint-requests/`, check the key,
health, micro-batching and multi-instance serving, and finish with stale-process detection and
deletion. Tasks whose local module or tiny model is not there are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from bot.console import endpoint_json
from platforms.base import DeploySpec, EndpointInfo, EndpointState, PlatformError
from platforms.local import LocalPlatform
from platforms.local.endpoints import endpoint_key, predictor_module
from platforms.tasks import Task
from tests import tiny_models
from tests.helpers import DATA, wait_until

REQUESTS = DATA / "endpoint-requests"
# Which endpoint answers each request folder (content safety is a classifier; chat is text generation).
FOLDER_TASK = {
    "chat-completion": Task.TEXT_GENERATION,
    "content-safety": Task.TEXT_CLASSIFICATION,
    "text-classification-pair": Task.TEXT_CLASSIFICATION,
}
TEXTS = [json.dumps(json.loads(p.read_text())) for p in sorted(REQUESTS.rglob("*.json"))] + [
    "hello world i feel great", "the house is wonderful", "[MASK] is the capital of France",
]
ENDPOINTS = {
    Task.TEXT_CLASSIFICATION: "ep-text-cls",
    Task.TOKEN_CLASSIFICATION: "ep-token-cls",
    Task.QUESTION_ANSWERING: "ep-qa",
    Task.SUMMARIZATION: "ep-summarize",
    Task.TRANSLATION: "ep-translate",
    Task.TEXT_GENERATION: "ep-generate",
}
INSTANCES = {Task.TOKEN_CLASSIFICATION: 2}


def _add_model(root: Path, task: Task) -> str | None:
    """A tiny model for `task` from tests/tiny_models.py, or None when that helper is not there yet."""
    builders = {
        Task.TEXT_CLASSIFICATION: ("add_tiny_bert", {"name": "tiny-cls"}),
        Task.TOKEN_CLASSIFICATION: ("add_tiny_bert", {"name": "tiny-tok", "tasks": (Task.TOKEN_CLASSIFICATION,)}),
        Task.QUESTION_ANSWERING: ("add_tiny_bert", {"name": "tiny-qa", "tasks": (Task.QUESTION_ANSWERING,)}),
        Task.SUMMARIZATION: ("add_tiny_t5", {"name": "tiny-sum", "tasks": (Task.SUMMARIZATION,)}),
        Task.TRANSLATION: ("add_tiny_t5", {"name": "tiny-mt", "tasks": (Task.TRANSLATION,)}),
        Task.TEXT_GENERATION: ("add_tiny_gpt2", {"name": "tiny-gen"}),
    }
    builder, options = builders[task]
    build = getattr(tiny_models, builder, None)
    return build(root, TEXTS, **options).ref if build else None


class Served:
    def __init__(self, platform: LocalPlatform):
        self.platform = platform
        self.endpoints: dict[Task, EndpointInfo] = {}
        self.skipped: dict[Task, str] = {}

    def endpoint(self, task: Task) -> EndpointInfo:
        if task not in self.endpoints:
            pytest.skip(self.skipped.get(task, f"no {task} endpoint"))
        return self.endpoints[task]


@pytest.fixture(scope="module")
def served(redis_server, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serving") / "models"
    client = Redis.from_url(redis_server.url)
    platform = LocalPlatform(root, seed=False, redis=client)
    served = Served(platform)
    specs = {}
    for task, name in ENDPOINTS.items():
        try:
            predictor_module(task)
        except PlatformError as exc:
            served.skipped[task] = str(exc)
            continue
        ref = _add_model(root, task)
        if ref is None:
            served.skipped[task] = f"tests/tiny_models.py has no tiny model for {task} yet"
            continue
        specs[task] = DeploySpec(model=ref, endpoint=name, task=task, instances=INSTANCES.get(task, 1), max_wait_ms=20)
    started = time.monotonic()
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {task: pool.submit(platform.deploy, spec) for task, spec in specs.items()}
        deployed = {task: future.result() for task, future in futures.items()}
    served.endpoints = {task: info.model_copy(update={"key": platform.pick_up_endpoint_key(info.name)})
                        for task, info in deployed.items()}
    print(f"\ndeployed {len(specs)} endpoints in {time.monotonic() - started:.1f}s")
    yield served
    for info in platform.list_endpoints():
        platform.delete_endpoint(info.name)
    client.close()


def call(url: str, body: Any = None, key: str | None = None, *, raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def key_of(info: EndpointInfo) -> str:
    assert info.key is not None
    return info.key.get_secret_value()


def base(info: EndpointInfo) -> str:
    assert info.url is not None
    return info.url.removesuffix("/score")


REQUEST_FILES = sorted(REQUESTS.rglob("*.json"))


@pytest.mark.parametrize("path", REQUEST_FILES, ids=[f"{p.parent.name}/{p.name}" for p in REQUEST_FILES])
def test_every_request_file_is_answered(served: Served, path: Path):
    task = FOLDER_TASK.get(path.parent.name) or Task(path.parent.name)
    info = served.endpoint(task)
    status, answer = call(info.url, raw=path.read_bytes(), key=key_of(info))
    assert status == 200, answer
    assert isinstance(answer, list) and answer and all(isinstance(item, dict) for item in answer)
    body = json.loads(path.read_text())
    data = body.get("input_data", body.get("inputs"))
    conversations = 1 if path.parent.name == "chat-completion" else None
    expected = conversations or len((data.get("input_string") or data.get("data") or data.get("question"))
                                    if isinstance(data, dict) else data)
    assert len(answer) == expected


def test_pair_rows_reach_the_model_as_pairs(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    status, answer = call(info.url, {"input_data": [["a man plays", "someone plays"], "just one sentence"]},
                          key_of(info))
    assert status == 200 and len(answer) == 2 and {"label", "score"} <= answer[0].keys()


def test_a_wrong_or_missing_key_gets_401(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    body = {"input_data": ["hello"]}
    for key in (None, "not-the-key", key_of(info)[:-1]):
        status, answer = call(info.url, body, key)
        assert status == 401 and "Bearer" in answer["error"]
    assert call(base(info) + "/stats")[0] == 401


def test_health_answers_without_a_key(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    status, answer = call(base(info) + "/health")
    assert status == 200 and answer["status"] == "healthy" and answer["model"] == info.model
    assert answer["pid"] in info.pids


def test_a_bad_body_is_refused_with_the_accepted_shapes(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    status, answer = call(info.url, {"text": "hello"}, key_of(info))
    assert status == 400 and "input_data" in answer["error"] and "inputs" in answer["error"]
    status, answer = call(info.url, raw=b"{not json", key=key_of(info))
    assert status == 400 and "not JSON" in answer["error"]


def test_concurrent_requests_are_micro_batched(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    key = key_of(info)
    before = call(base(info) + "/stats", key=key)[1]
    barrier = threading.Barrier(16)
    latencies: list[float] = []

    def one(i: int) -> int:
        barrier.wait()
        started = time.monotonic()
        status, answer = call(info.url, {"input_data": [f"request number {i} is here"]}, key)
        latencies.append(time.monotonic() - started)
        assert len(answer) == 1
        return status

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(one, range(16))) == [200] * 16
    after = call(base(info) + "/stats", key=key)[1]
    sizes = {int(k): v - before["requests_per_call"].get(k, 0) for k, v in after["requests_per_call"].items()}
    sizes = {k: v for k, v in sizes.items() if v > 0}
    assert sum(k * v for k, v in sizes.items()) == 16
    assert max(sizes) > 1, f"no batching: {sizes}"
    assert after["predictor_calls"] - before["predictor_calls"] < 16
    print(f"\n16 concurrent requests -> requests per predictor call {sizes}; "
          f"latency max {max(latencies) * 1000:.0f} ms, median {sorted(latencies)[8] * 1000:.0f} ms")


def test_endpoints_are_listed_with_state_and_no_key(served: Served):
    listed = {e.name: e for e in served.platform.list_endpoints()}
    for info in served.endpoints.values():
        assert listed[info.name].state == EndpointState.HEALTHY
        assert listed[info.name].url == info.url
        assert "key" not in endpoint_json(listed[info.name])
        assert key_of(info) not in json.dumps(endpoint_json(listed[info.name]))


def test_a_taken_name_is_refused(served: Served):
    info = served.endpoint(Task.TEXT_CLASSIFICATION)
    with pytest.raises(PlatformError, match="already exists"):
        served.platform.deploy(DeploySpec(model=info.model, endpoint=info.name))


def test_several_instances_share_the_port_and_a_dead_one_is_replaced(served: Served):
    info = served.endpoint(Task.TOKEN_CLASSIFICATION)
    assert len(info.pids) == 2 and len(set(info.pids)) == 2
    assert call(info.url, {"input_data": ["Gianluca Vialli ( Chelsea )"]}, key_of(info))[0] == 200
    os.kill(info.pids[0], signal.SIGKILL)
    replaced = wait_until(lambda: (i := served.platform.get_endpoint(info.name)).pids != info.pids
                          and len(i.pids) == 2 and i, timeout=60)
    assert info.pids[1] in replaced.pids and info.pids[0] not in replaced.pids
    assert call(info.url, {"input_data": ["TALLINN 1996-12-06"]}, key_of(info))[0] == 200


def test_a_stale_endpoint_is_reported_not_lost(served: Served):
    info = served.endpoint(Task.TRANSLATION)
    group = [info.pid, *info.pids]
    for pid in group:
        os.kill(pid, signal.SIGSTOP)
    try:
        hung = served.platform.get_endpoint(info.name)
        assert hung.state == EndpointState.UNHEALTHY and "/health" in hung.message
    finally:
        for pid in group:
            os.kill(pid, signal.SIGCONT)
    for pid in group:
        os.kill(pid, signal.SIGKILL)
    gone = wait_until(lambda: (i := served.platform.get_endpoint(info.name)).state == EndpointState.STOPPED and i,
                      timeout=20)
    assert "gone" in gone.message
    assert info.name in {e.name for e in served.platform.list_endpoints()}
    served.platform.delete_endpoint(info.name)
    assert info.name not in {e.name for e in served.platform.list_endpoints()}


def test_delete_stops_the_processes_and_frees_the_name(served: Served):
    info = served.endpoints.pop(Task.TEXT_CLASSIFICATION, None) or pytest.skip("no text-classification endpoint")
    deleted = served.platform.delete_endpoint(info.name)
    assert deleted.state == EndpointState.STOPPED
    for pid in [info.pid, *info.pids]:
        assert not Path(f"/proc/{pid}").exists() or b"serving" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base(info) + "/health", timeout=5)
    assert served.platform.redis.get(endpoint_key(info.name)) is None
    with pytest.raises(PlatformError, match="no endpoint"):
        served.platform.get_endpoint(info.name)


def test_a_model_that_cannot_load_fails_the_deploy_with_its_log_and_frees_the_name(served: Served):
    catalog = served.platform.catalog
    version, folder = catalog.new_version_dir("broken")
    (folder / "config.json").write_text("{}")
    catalog.register(folder, tiny_models.ModelCard(name="broken", version=version, tasks=[Task.TEXT_CLASSIFICATION]))
    with pytest.raises(PlatformError, match='endpoint "ep-broken" did not start') as failed:
        served.platform.deploy(DeploySpec(model="broken", endpoint="ep-broken"))
    assert "ep-broken" not in str(failed.value).split("did not start")[1], "no log path or tail for a channel"
    assert "worker's log" in str(failed.value)
    assert "ep-broken" not in {e.name for e in served.platform.list_endpoints()}


def test_the_batcher_groups_row_shapes_and_a_bad_request_fails_alone():
    from platforms.local.serving import MicroBatcher

    calls: list[list[dict[str, Any]]] = []

    def predict(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append(rows)
        if any(row["sentence1"] == "bad" for row in rows):
            raise PlatformError("bad input")
        return [{"keys": sorted(row)} for row in rows]

    answered: list[int] = []
    batcher = MicroBatcher(predict, max_rows=64, max_wait=0.05, answered=answered.append)
    inputs = [[{"sentence1": f"s{i}"}] if i % 2 else [{"sentence1": f"s{i}", "sentence2": "x"}] for i in range(7)]
    inputs.append([{"sentence1": "bad"}])
    barrier = threading.Barrier(len(inputs))

    def submit(rows: list[dict[str, Any]]) -> Any:
        barrier.wait()
        try:
            return batcher.submit(rows)
        except PlatformError as exc:
            return str(exc)

    with ThreadPoolExecutor(len(inputs)) as pool:
        answers = list(pool.map(submit, inputs))
    assert answers[-1] == "bad input"
    assert [a[0]["keys"] for a in answers[:-1]] == [["sentence1", "sentence2"] if i % 2 == 0 else ["sentence1"]
                                                     for i in range(7)]
    assert all(len({frozenset(row) for row in rows}) == 1 for rows in calls)
    assert batcher.stats()["requests_per_call"] != {"1": len(inputs)}
    assert sum(answered) == len(inputs) - 1, "the bad request is not counted as answered"
    assert len(answered) == sum(batcher.stats()["requests_per_call"].values()), "one count per round, not per request"


def test_a_request_that_queued_behind_a_call_does_not_wait_again():
    """The batching wait runs from a request's arrival: one that arrived while the predictor was busy
    for longer than `max_wait` has waited enough, and goes in the next call at once."""
    from platforms.local.serving import MicroBatcher

    busy, max_wait = 0.6, 1.0
    release, slow_started = threading.Event(), threading.Event()

    def predict(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if rows[0]["text"] == "block":
            release.wait(10)
        if rows[0]["text"] == "slow":
            slow_started.set()
            time.sleep(busy)
        return [{} for _ in rows]

    batcher = MicroBatcher(predict, max_rows=64, max_wait=max_wait)
    with ThreadPoolExecutor(4) as pool:
        blocked = pool.submit(batcher.submit, [{"text": "block"}])
        wait_until(lambda: batcher.stats()["predictor_calls"] == 0 and batcher.pending.empty(), 5)
        slow = [pool.submit(batcher.submit, [{"text": "slow"}]) for _ in range(2)]
        wait_until(lambda: batcher.pending.qsize() == 2, 5)
        release.set()  # both slow requests go in one call, which turns the batching wait on
        assert slow_started.wait(10)
        queued_at = time.monotonic()
        batcher.submit([{"text": "late"}])
        waited = time.monotonic() - queued_at
        assert blocked.result(10) == [{}] and all(f.result(10) == [{}] for f in slow)
    assert batcher.stats()["requests_per_call"].get("2") == 1, batcher.stats()
    assert waited < busy + max_wait / 2, f"waited {waited:.2f} s: the batching wait started again after the busy call"


def _in_process_endpoint(tmp_path: Path) -> tuple[str, str, list[int]]:
    """An endpoint's HTTP front in this process, with a batcher that answers at once; the sizes of
    every `send` and `sendall` its connections make are recorded."""
    import hashlib
    import socket
    from http.server import ThreadingHTTPServer

    from platforms.local.endpoints import KeyHashFile
    from platforms.local.serving import Activity, EndpointApp, MicroBatcher, _handler

    sends: list[int] = []

    class CountingSocket(socket.socket):
        def send(self, data: Any, *flags: Any) -> int:
            sends.append(len(data))
            return super().send(data, *flags)

        def sendall(self, data: Any, *flags: Any) -> None:
            sends.append(len(data))
            super().sendall(data, *flags)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def get_request(self) -> tuple[socket.socket, Any]:
            conn, address = super().get_request()
            return CountingSocket(conn.family, conn.type, conn.proto, fileno=conn.detach()), address

    key = "k" * 32
    (tmp_path / "key").write_text(hashlib.sha256(key.encode()).hexdigest())
    activity = Activity(tmp_path / "activity.json")
    batcher = MicroBatcher(lambda rows: [{"label": "x", "score": 1.0} for _ in rows], answered=activity.count)
    app = EndpointApp(key_hash=KeyHashFile(tmp_path / "key"), task=Task.TEXT_CLASSIFICATION, model="stub",
                      batcher=batcher, activity=activity)
    server = Server(("127.0.0.1", 0), _handler(app))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", key, sends


def test_an_answer_leaves_in_one_send_and_is_counted_before(tmp_path: Path):
    url, key, sends = _in_process_endpoint(tmp_path)
    status, answer = call(f"{url}/score", {"input_data": ["hello"]}, key)
    assert status == 200 and answer == [{"label": "x", "score": 1.0}]
    assert len(sends) == 1, f"the answer left in {len(sends)} sends ({sends} bytes)"
    assert json.loads((tmp_path / "activity.json").read_text())["requests"] == 1


def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(tmp_path: Path):
    import socket

    url, key, _ = _in_process_endpoint(tmp_path)
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"input_data": ["hello"]}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(f"POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     "Expect: 100-continue\r\n\r\n".encode())
        assert conn.recv(4096).startswith(b"HTTP/1.1 100"), "no 100 Continue: the client would wait for it"
        conn.sendall(body)
        answer = b""
        while b"score" not in answer:
            answer += conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200")

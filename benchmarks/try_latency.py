"""try_latency: `try` answered by the warm try service beside a real `fmbot worker`, against the model
called in-process.

The model is MiniLM-L6 with a two-label head (the endpoint benchmark's). A real `fmbot worker`
process forks its try service; this process asks it through a private Redis the way the bot and
the CLI do (`handlers.tryout.try_model`). Warm: each round alternates one in-process
`model(**inputs)` call on the same text, already tokenized (the baseline), with one try (handing
the text over, tokenizing, predicting, labelling, answering); targets from issue 20: try p50 ≤
1.3× the call's p50 + 5 ms, p99 ≤ 2× its p99. Cold: the first try of a model the service has not
loaded, against loading it in-process (≤ load + 1 s). For context, the `fmbot try` command line
start to finish, asking the warm service (it imports no torch) and predicting in its own process
when no service runs (what every CLI call cost before). Torch runs on one thread in both processes:
with its default, the service's OpenMP threads still spinning after a try took the cores from the
in-process call that followed it, which then measured 10× slower than the try itself.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, compared, log, main, median, percentile, rounds
from benchmarks.endpoint_throughput import add_classifier

NAME = "try_latency"
ROOT = Path(__file__).resolve().parent.parent
TEXT = "a gorgeous, witty, seductive movie"


def _cli(env: dict[str, str], model: str) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "try", model, TEXT, "--json"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"fmbot try failed: {done.stderr[-500:]}")
    return time.perf_counter() - began


def run(quick: bool) -> list[Result]:
    import torch
    from redis import Redis
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bot.bootstrap import build_runtime
    from bot.redis_server import private_redis
    from bot.settings import Settings
    from handlers.tryout import try_model
    from tests.worker_process import settings_env
    from workers import keys

    torch.set_num_threads(1)
    count, calls = rounds(quick), 20 if quick else 60
    cli_runs = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="fmbot-try-") as scratch, private_redis() as server:
        root = Path(scratch)
        model = add_classifier(root / "models")
        folder = root / "models" / model.replace(":", "/")
        settings = Settings(_env_file=None, redis_url=server.url, fmbot_models_dir=root / "models",
                            fmbot_data_dir=root / "data", fmbot_seed_models=False)
        env = {**settings_env(settings), "OMP_NUM_THREADS": "1"}
        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=open(root / "worker.log", "wb"))
        try:
            redis = Redis.from_url(server.url)
            deadline = time.monotonic() + 120
            while not redis.exists(keys.try_alive()):
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"no try service: {(root / 'worker.log').read_text()[-2000:]}")
                time.sleep(0.1)
            rt = build_runtime(settings, slack=False)

            log(f"{NAME}: cold load in-process vs the service's first try")
            began = time.perf_counter()
            tokenizer = AutoTokenizer.from_pretrained(folder)
            local = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            load_seconds = time.perf_counter() - began
            began = time.perf_counter()
            first = try_model(rt, model, TEXT)
            cold_seconds = time.perf_counter() - began
            if first.model != model:
                raise RuntimeError(f"the try answered for {first.model}")

            log(f"{NAME}: {count} rounds of {calls} alternating warm calls")
            inputs = tokenizer([TEXT], return_tensors="pt")
            direct: list[list[float]] = []
            served: list[list[float]] = []
            with torch.inference_mode():
                for _ in range(5):
                    local(**inputs)
                for _ in range(count):
                    direct.append([]), served.append([])
                    for _ in range(calls):
                        began = time.perf_counter()
                        local(**inputs)
                        direct[-1].append(time.perf_counter() - began)
                        began = time.perf_counter()
                        try_model(rt, model, TEXT)
                        served[-1].append(time.perf_counter() - began)

            log(f"{NAME}: the command line, asking the service and on its own")
            asking = [_cli(env, model) for _ in range(cli_runs)]
        finally:
            worker.terminate()
            worker.wait(timeout=60)
        while redis.exists(keys.try_alive()):  # the stopped service's mark expires: the CLI asks nobody
            time.sleep(0.2)
        alone = [_cli({**env, "FMBOT_TRY_SERVICE": "false"}, model) for _ in range(cli_runs)]

    ms = 1000.0

    def per_round(q: float, values: list[list[float]]) -> list[float]:
        return [percentile(one, q) * ms for one in values]

    p50 = compared(NAME, "warm try p50", per_round(50, served), per_round(50, direct),
                   baseline_name="in-process model(**inputs)", unit="ms")
    p50.limit = round(1.3 * p50.baseline + 5, 2)
    p50.note = f"target 1.3× the call + 5 ms; {calls} calls a round; torch on 1 thread in both"
    return [
        p50,
        compared(NAME, "warm try p99", per_round(99, served), per_round(99, direct),
                 baseline_name="in-process model(**inputs)", unit="ms", target=2.0),
        Result(benchmark=NAME, metric="cold try (model not loaded)", fmbot=cold_seconds, baseline=load_seconds,
               baseline_name="loading it in-process", unit="s", limit=round(load_seconds + 1, 2),
               note="target: load time + 1 s"),
        Result(benchmark=NAME, metric="`fmbot try` start to answer, asking the warm service", fmbot=median(asking),
               baseline=median(alone), baseline_name="`fmbot try` predicting in its own process", unit="s",
               note=f"median of {cli_runs}; context, no target"),
    ]


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

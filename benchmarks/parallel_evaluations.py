"""parallel_evaluations: N evaluations as one comparison on 2 workers vs the same N one after another.

fmbot's run is a comparison (`handlers.compare.start_comparison`): one evaluation job per model,
all queued at once, run by two real `fmbot worker` processes, the comparison's finishing job (RQ
dependency) ranking them; timed from submit to the comparison's final record. The baseline is what
a team does without it: the same N evaluations (`handlers.evaluate.start_evaluation`) submitted one
after another, each once the previous has finished, to the same two workers. Rounds alternate
which goes first (`benchmarks.common.alternate`).

Tiny classifiers (tests/tiny_models.py), torch on one thread per process (as `OMP_NUM_THREADS=1`
in the tests, and as `fmbot worker --processes 2` sets it on two cores), so each worker keeps one of
the two cores busy. The CPU seconds per evaluation (workers and their reaped work horses) are given
with the load average: on a busy machine they, not the wall-clock ratio, say what each mode costs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result, alternate, compared, log, main, median, rounds

NAME = "parallel_evaluations"
HERE = Path(__file__).resolve().parent
SST2 = HERE.parent / "tests" / "data" / "sst2_small_validation.jsonl"
MAPPING = {"sentence1": "input_string", "label": "label_string"}
LABELS = ["NEGATIVE", "POSITIVE"]
WORKERS = 2


def wait_final(rt, job_id: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not rt.ledger.get(job_id).state.final:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} did not finish in {timeout:.0f} s")
        time.sleep(0.05)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of the workers and of the work horses they have reaped (utime, stime, cutime,
    cstime of /proc/PID/stat): what the runs cost, whatever else the machine is doing."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def run(quick: bool) -> list[Result]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from bot.bootstrap import build_runtime
    from bot.redis_server import private_redis
    from bot.settings import Settings
    from handlers.compare import CompareRequest, start_comparison
    from handlers.evaluate import EvaluateRequest, start_evaluation
    from platforms.base import DataRef, EvaluateSpec
    from platforms.datasets import ColumnMapping
    from platforms.tasks import Task
    from tests.tiny_models import add_tiny_classifier
    from tests.worker_process import WorkerProcess

    models, rows = (2, 87) if quick else (4, 87 * 40)
    task = Task.TEXT_CLASSIFICATION
    with private_redis() as server, tempfile.TemporaryDirectory(prefix="fmbot-bench-") as scratch:
        root = Path(scratch)
        lines = [line for line in SST2.read_text().splitlines() if line.strip()]
        test = root / "test.jsonl"
        test.write_text("\n".join(lines[i % len(lines)] for i in range(rows)) + "\n")
        settings = Settings(_env_file=None, redis_url=server.url, fmbot_models_dir=root / "models",
                            fmbot_data_dir=root / "data", fmbot_seed_models=False, fmbot_progress_interval=1.0,
                            fmbot_job_retries=0)
        texts = [json.loads(line)["input_string"] for line in lines]
        refs = [add_tiny_classifier(Path(settings.fmbot_models_dir), texts, LABELS, name=f"bench-{i}", seed=i).ref
                for i in range(models)]
        rt = build_runtime(settings)
        data = DataRef(path=str(test), name=test.name)
        workers = [WorkerProcess(settings, root / f"worker-{i}.log").start() for i in range(WORKERS)]
        try:
            def parallel() -> float:
                started = time.perf_counter()
                record = start_comparison(rt, CompareRequest(models=refs, task=task, test=data,
                                                             mapping=ColumnMapping.build(MAPPING, task),
                                                             requester="bench"))
                wait_final(rt, record.id)
                final = rt.ledger.get(record.id)
                if final.state != "completed":
                    raise RuntimeError(f"comparison {final.id} {final.state}: {final.error}")
                return time.perf_counter() - started

            def in_a_row() -> float:
                started = time.perf_counter()
                for ref in refs:
                    record = start_evaluation(rt, EvaluateRequest(
                        spec=EvaluateSpec(model=ref, task=task, test=data, mapping=MAPPING), requester="bench"))
                    wait_final(rt, record.id)
                return time.perf_counter() - started

            in_a_row()  # warm-up: page cache, each worker's first fork
            pids = [worker.process.pid for worker in workers]

            def costed(measure):
                def timed() -> tuple[float, float]:
                    spent = cpu_seconds(pids)
                    seconds = measure()
                    return seconds, (cpu_seconds(pids) - spent) / models
                return timed

            runs = alternate(rounds(quick), {"parallel": costed(parallel), "row": costed(in_a_row)})
            log(f"{NAME}: {runs}")
        finally:
            for worker in workers:
                worker.stop()
    times = {label: [seconds for seconds, _ in pairs] for label, pairs in runs.items()}
    cpu = {label: [spent for _, spent in pairs] for label, pairs in runs.items()}
    note = (f"CPU s per evaluation {median(cpu['parallel']):.2f} in parallel, {median(cpu['row']):.2f} in a row; "
            f"load average {os.getloadavg()[0]:.1f}")
    return [compared(NAME, f"{models} evaluations of {rows} rows, {WORKERS} workers", times["parallel"], times["row"],
                     baseline_name="one after another", unit="s", target=0.6, note=note)]


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

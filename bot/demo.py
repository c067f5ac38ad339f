"""`fmbot demo`: the main job end to end on this machine, with everything it needs started here.

A private Redis and one worker process are started and stopped again; the jobs go through the
same handlers, queue, worker and ledger as a Slack request would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from bot import console
from bot.redis_server import private_redis
from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers.evaluate import EvaluateRequest, start_evaluation
from handlers.finetune import FinetuneRequest, start_finetune
from platforms.base import DataRef, EvaluateSpec, FinetuneSpec, Hyperparameters
from platforms.datasets import SplitPlan
from platforms.tasks import Task
from workers.ledger import JobRecord
from workers.runtime import Runtime

DATA = Path(__file__).parent / "demo_data"
BASE_MODEL = "all-MiniLM-L6-v2"


def _follow(rt: Runtime, record: JobRecord, title: str) -> JobRecord:
    last = ""
    while not record.state.final:
        time.sleep(0.5)
        record = rt.ledger.get(record.id)
        line = title
        if record.progress:
            p = record.progress
            bar = "#" * round(p.fraction * 30)
            loss = f" loss {p.loss:.3f}" if p.loss is not None else ""
            line = f"{title} [{bar:<30}] {p.fraction:4.0%} step {p.step}/{p.total}{loss}"
        if line != last:
            print(f"\r{line}", end="", flush=True)
            last = line
    print()
    if record.state != "completed":
        raise SystemExit(f"{title} {record.state}: {record.error}")
    return record


def run_demo(settings: Settings) -> int:
    mapping = {"sentence1": "review", "label": "sentiment"}
    train = DataRef(path=str(DATA / "train.jsonl"), name="reviews-train.jsonl")
    test = DataRef(path=str(DATA / "test.jsonl"), name="reviews-test.jsonl")
    with private_redis() as redis_server:
        print(f"Started a private Redis on {redis_server.url}")
        settings = settings.replace(**{"redis_url": redis_server.url, "slack_bot_token": None,
                                               "fmbot_progress_interval": 1.0})
        env = {key: value for key, value in os.environ.items() if not key.startswith("SLACK_")}
        env.update(REDIS_URL=redis_server.url, FMBOT_MODELS_DIR=str(settings.fmbot_models_dir),
                   FMBOT_LOG_LEVEL="ERROR")
        worker = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=env)
        try:
            rt = build_runtime(settings, slack=False)
            print(f"\nModel catalog ({settings.fmbot_models_dir}):")
            print(console.model_table(rt.platform.list_models()))

            print(f"\n1. Scoring {BASE_MODEL} with an untrained classification head on {test.name}")
            before = _follow(rt, start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(
                model=BASE_MODEL, task=Task.TEXT_CLASSIFICATION, test=test, mapping=mapping), requester="demo",
            )), "   evaluating")

            print(f"\n2. Fine-tuning {BASE_MODEL} on {train.name} (320 reviews, 3 epochs, {_device()})")
            after = _follow(rt, start_finetune(rt, FinetuneRequest(spec=FinetuneSpec(
                model=BASE_MODEL, task=Task.TEXT_CLASSIFICATION, train=train, test=test,
                split=SplitPlan(validation=0.0, test=0.0), mapping=mapping,
                hyperparameters=Hyperparameters(epochs=3, learning_rate=1e-4, batch_size=16, max_length=64),
            ), requester="demo")), "   training  ")
            elapsed = after.elapsed_seconds

            print(f"\n3. Metrics on {test.name} (80 reviews): base model's head before vs. fine-tuned model")
            print(console.metrics_table({"before": before.metrics, "after": after.metrics}))
            print(f"\nFine-tuning took {elapsed:.0f} s. The new model's card:")
            print(console.model_card(rt.platform.get_model(after.output_model)))
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    return 0


def _device() -> str:
    from platforms.local.training import device

    return device()

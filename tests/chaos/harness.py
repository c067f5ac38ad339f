"""What the chaos tests share: jobs submitted as Slack would, processes found and killed, and the
thread read back from the Slack stand-in to check every job ended exactly once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

from bot.bootstrap import build_runtime
from bot.settings import Settings
from handlers.finetune import FinetuneRequest, start_finetune
from platforms.base import DataRef, FinetuneSpec, Hyperparameters
from platforms.tasks import Task
from tests.helpers import DATA
from tests.slack_standin import SlackStandIn
from tests.worker_process import WorkerProcess
from workers.ledger import JobRecord, ReplyTarget
from workers.runtime import Runtime

FINAL_REPLY_MARKS = ("*Metrics*", "failed:", "canceled")


def submit_finetune(rt: Runtime, model: str, *, epochs: int, channel: str = "C0CHAN") -> JobRecord:
    task = Task.TEXT_CLASSIFICATION
    return start_finetune(rt, FinetuneRequest(spec=FinetuneSpec(
        model=model, task=task,
        train=DataRef(path=str(DATA / "sst2_small_validation.jsonl"), name="sst2.jsonl"),
        mapping={"sentence1": "input_string", "label": "label"},
        hyperparameters=Hyperparameters(epochs=epochs, batch_size=8),
    ), requester="U0USER", reply_to=ReplyTarget(channel=channel)))


def slack_runtime(settings: Settings) -> Runtime:
    return build_runtime(settings, slack=True)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def horse_of(worker_pid: int) -> int | None:
    """The work horse RQ forked for the running job: the child that leads its own process group
    (RQ calls setsid in it), unlike the scheduler process."""
    for pid in children(worker_pid):
        try:
            if os.getpgid(pid) == pid:
                return pid
        except ProcessLookupError:
            continue
    return None


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


def final_replies(slack: SlackStandIn) -> Counter[str]:
    """How many final messages each job's thread got, keyed by thread ts."""
    counts: Counter[str] = Counter()
    for call in slack.of("chat.postMessage"):
        text = call.params.get("text") or ""
        if call.params.get("thread_ts") and any(mark in text for mark in FINAL_REPLY_MARKS):
            counts[call.params["thread_ts"]] += 1
    return counts


def wait_running(rt: Runtime, job_id: str, timeout: float = 120) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = rt.ledger.get(job_id)
        if record.state == "running" and record.progress and record.progress.step > 0:
            return record
        time.sleep(0.1)
    raise AssertionError(f"{job_id} never got going: {rt.ledger.get(job_id)}")


def training_on_one_worker(settings: Settings, start_worker, model: str, *,
                           epochs: int = 4) -> tuple[Runtime, WorkerProcess, JobRecord]:
    """A fine-tune that is training on a worker of its own, which a test is about to kill."""
    rt = slack_runtime(settings)
    worker = start_worker(settings)
    record = submit_finetune(rt, model, epochs=epochs)
    wait_running(rt, record.id)
    return rt, worker, record

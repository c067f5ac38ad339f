"""A work horse SIGKILLed in the middle of a comparison: its evaluation is retried as any
evaluation is, and the comparison still ranks every model, in one reply."""

from __future__ import annotations

import json

import pytest

from handlers.compare import CompareRequest, start_comparison
from platforms.base import DataRef, JobState
from platforms.datasets import ColumnMapping
from platforms.tasks import Task
from tests.chaos.harness import horse_of, kill, slack_runtime
from tests.helpers import DATA, final_record, wait_until
from tests.tiny_models import add_tiny_classifier
from workers.ledger import ReplyTarget

SST2 = DATA / "sst2_small_validation.jsonl"


@pytest.mark.chaos
def test_a_horse_killed_mid_comparison_is_retried_and_every_model_still_ranks(slack_settings, slack, start_worker,
                                                                              tmp_path):
    settings = slack_settings.replace(fmbot_job_retries=1)
    lines = [line for line in SST2.read_text().splitlines() if line.strip()]
    test = tmp_path / "long-test.jsonl"
    test.write_text("\n".join(lines * 40) + "\n")
    texts = [json.loads(line)["input_string"] for line in lines]
    refs = [add_tiny_classifier(settings.fmbot_models_dir, texts, ["NEGATIVE", "POSITIVE"], name=f"m{i}", seed=i).ref
            for i in (1, 5)]
    rt = slack_runtime(settings)
    worker = start_worker(settings)
    task = Task.TEXT_CLASSIFICATION
    record = start_comparison(rt, CompareRequest(
        models=refs, task=task, test=DataRef(path=str(test), name=test.name),
        mapping=ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, task),
        requester="U0USER", reply_to=ReplyTarget(channel="C0CHAN")))
    members = record.spec["members"]
    wait_until(lambda: any(rt.ledger.get(m).state == JobState.RUNNING for m in members), timeout=120)
    kill(wait_until(lambda: horse_of(worker.process.pid), timeout=30))

    final = final_record(rt.ledger, record.id, timeout=300)
    assert final.state == JobState.COMPLETED, worker.output()[-3000:]
    standings = final.result["comparison"]["standings"]
    assert sorted(s["rank"] for s in standings) == [1, 2]
    assert max(rt.ledger.get(m).attempts for m in members) == 2, "the killed evaluation ran again"
    slack.wait_for(lambda: [c for c in slack.of("chat.postMessage") if c.params.get("thread_ts")
                            and any(b["type"] == "table" for b in c.params.get("blocks") or [])], timeout=30)
    tables = [c for c in slack.of("chat.postMessage") if any(b["type"] == "table" for b in c.params.get("blocks") or [])]
    assert len(tables) == 1

"""Fair use and storage: the policy's per-user and per-channel limits, and uploads that do not outlive
their job, against a real Redis, the Slack stand-in over signed HTTP and a real worker.

Each refusal names what is held, the limit and the policy key that raises it; an upload counts
against its user's storage and daily limits while it streams, and is deleted when the job that
reads it ends (or, read by no job, after its retention), along with stopped endpoints' old logs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from bot.bootstrap import build_runtime
from bot.downloads import Uploader
from bot.settings import Settings
from bot.slack.files import download_upload
from handlers import policy
from handlers.deploy import DeployRequest, start_deploy
from handlers.evaluate import EvaluateRequest, start_evaluation
from handlers.imports import ImportRequest, start_import
from handlers.limits import LimitReached
from platforms.base import DataRef, DeploySpec, EvaluateSpec, ImportSpec, JobState
from tests.helpers import DATA, LocalServer, wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from workers import keys, storage
from workers.ledger import Ledger, ReplyTarget


def install(monkeypatch: pytest.MonkeyPatch, limits: dict) -> policy.Policy:
    rules = policy.Policy.model_validate({"admins": ["U0ADMIN"], "allow": {"import": {"everyone": True},
                                                                          "deploy": {"everyone": True}},
                                          "limits": limits})
    monkeypatch.setattr(policy, "_current", rules)
    return rules


def importing(folder: Path, user: str, channel: str = "C0CHAN") -> ImportRequest:
    return ImportRequest(spec=ImportSpec(model_id="acme/tiny", task="fill-mask", source=str(folder)),
                         requester=user, reply_to=ReplyTarget(channel=channel))


def test_limits_are_their_own_policy_section_with_raised_values():
    rules = policy.Policy.model_validate({"limits": {"user": {"queued_jobs": 2}, "channel": {"endpoints": 3},
                                                     "raised": {"U0BIG": {"queued_jobs": 9}}}})
    assert rules.limits.of("user", "U0ANY").queued_jobs == 2
    assert rules.limits.of("user", "U0BIG").queued_jobs == 9
    assert rules.limits.of("user", "U0BIG").tries_per_minute == 20, "a raised limit keeps the other defaults"
    assert rules.limits.of("channel", "C0ANY").endpoints == 3
    with pytest.raises(ValidationError, match="queud_jobs"):
        policy.Policy.model_validate({"limits": {"user": {"queud_jobs": 2}}})


def test_queued_jobs_per_user_and_per_channel_are_refused_with_the_limit(settings: Settings, monkeypatch,
                                                                       tmp_path: Path):
    install(monkeypatch, {"user": {"queued_jobs": 1}, "channel": {"queued_jobs": 2},
                          "raised": {"U0BIG": {"queued_jobs": 5}}})
    rt = build_runtime(settings, slack=False)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    start_import(rt, importing(folder, "U0ALICE"))
    with pytest.raises(LimitReached) as refused:
        start_import(rt, importing(folder, "U0ALICE"))
    text = str(refused.value)
    assert "you already have 1 jobs waiting to run; the limit is 1 per user" in text
    assert "`limits.user.queued_jobs`" in text and "<@U0ADMIN>" in text and "cancel" in text
    start_import(rt, importing(folder, "U0BIG"))  # raised for this user; the channel now holds 2
    with pytest.raises(LimitReached, match="this channel already has 2 jobs waiting to run; the limit is 2 per "
                                           "channel") as refused:
        start_import(rt, importing(folder, "U0BIG"))
    assert "`limits.channel.queued_jobs`" in str(refused.value)
    start_import(rt, importing(folder, "U0BIG", channel="C0OTHER"))
    assert len(Ledger(rt.redis).recent()) == 3, "nothing was recorded for a refused job"


def test_concurrent_jobs_endpoints_and_import_size(settings: Settings, monkeypatch, tmp_path: Path, tiny_model):
    install(monkeypatch, {"user": {"concurrent_jobs": 2, "endpoints": 1, "import_gb": 0.000001}})
    rt = build_runtime(settings, slack=False)
    start_deploy(rt, DeployRequest(spec=DeploySpec(model=tiny_model, endpoint="first-one"), requester="U0ALICE"))
    with pytest.raises(LimitReached, match="you already have 1 endpoints; the limit is 1 per user") as refused:
        start_deploy(rt, DeployRequest(spec=DeploySpec(model=tiny_model, endpoint="second-one"), requester="U0ALICE"))
    assert "delete-endpoint" in str(refused.value)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 4096)
    with pytest.raises(LimitReached, match="a model of 0.00 GB to import; the limit is 1e-06 GB a model per user"):
        start_import(rt, importing(folder, "U0ALICE"))
    (folder / "model.safetensors").write_bytes(b"x" * 16)
    start_import(rt, importing(folder, "U0ALICE"))  # the deploy and this import: 2 active
    (folder / "model.safetensors").unlink()
    with pytest.raises(LimitReached, match="you already have 2 jobs queued or running; the limit is 2 per user"):
        start_import(rt, importing(folder, "U0ALICE"))


def test_slack_refusal_says_the_limit(slack_settings: Settings, bot, slack: SlackStandIn, monkeypatch):
    install(monkeypatch, {"user": {"queued_jobs": 1}})
    sender = SlackSender(bot.url)
    assert "Importing `acme/one`" in sender.ask("import acme/one fill-mask", slack, answers=2)[1]["text"]
    checking, said = sender.ask("import acme/two fill-mask", slack, answers=2)
    assert "Checking `acme/two`" in checking["text"]
    said = json.dumps(said)
    assert "the limit is 1 per user" in said and "limits.user.queued_jobs" in said, said
    assert len(Ledger(bot.runtime.redis).recent()) == 1


# A model's record as the hub published it (huggingface/huggingface_hub's own test cassette, see
# tests/data/SOURCES.md): google-bert/bert-base-uncased, its files listed without sizes and the
# storage it uses on the hub, 12,904,182,200 bytes.
HUB_CASSETTE = DATA / "hub" / "InferenceApiTest.test_simple_inference.yaml"
BERT = "google-bert/bert-base-uncased"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A hub stand-in at HF_ENDPOINT answering each GET the cassette recorded with its recorded
    status, headers and body; yields the paths asked for."""
    from huggingface_hub import constants

    recorded = {urlsplit(i["request"]["uri"]).path: i["response"]
                for i in yaml.safe_load(HUB_CASSETTE.read_text())["interactions"] if i["request"]["method"] == "GET"}
    asked: list[str] = []

    def get(request) -> None:
        asked.append(request.path)
        response = recorded.get(urlsplit(request.path).path)
        body = response["body"]["string"].encode() if response else b"{}"
        request.send_response(response["status"]["code"] if response else 404)
        for name in ("Content-Type", "Location"):
            for value in (response or {}).get("headers", {}).get(name, []):
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    server = LocalServer({"GET": get})
    url = f"http://127.0.0.1:{server.port}"
    for name, value in (("ENDPOINT", url), ("HF_HUB_OFFLINE", False)):
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    yield asked
    server.stop()


def test_a_hub_model_over_the_import_size_is_refused_before_anything_is_recorded(
        slack_settings: Settings, bot, slack: SlackStandIn, hub: list[str], monkeypatch):
    install(monkeypatch, {"user": {"import_gb": 5}})
    rt, ledger = bot.runtime, Ledger(bot.runtime.redis)
    bert = ImportRequest(spec=ImportSpec(model_id=BERT, task="fill-mask"), requester="U0ALICE")
    with pytest.raises(LimitReached, match=r"a model of 12\.02 GB to import; the limit is 5 GB a model per user"):
        start_import(rt, bert)
    assert f"/api/models/{BERT}?blobs=true" in hub, hub

    sender = SlackSender(bot.url)
    started = time.monotonic()
    acked = sender.command(f"import {BERT} fill-mask", response_url=f"{slack.base_url}/respond/bert")
    assert acked.text == "" and time.monotonic() - started < 3, "the hub is asked after the ack"
    checking, told = slack.wait_for(lambda: slack.answers(f"{slack.base_url}/respond/bert")[1:] and
                                    slack.answers(f"{slack.base_url}/respond/bert"), 30)
    assert "Checking" in checking["text"]
    told = told["text"]
    assert "12.02 GB" in told and "limits.user.import_gb" in told, told
    assert ledger.recent() == [], "nothing recorded"

    install(monkeypatch, {"user": {"import_gb": 20}})
    record = start_import(rt, bert)
    assert [r.id for r in ledger.recent()] == [record.id] and record.spec["max_bytes"] == 20 * 2**30


def test_uploads_count_against_storage_and_are_deleted_when_their_job_ends(
        slack_settings: Settings, slack: SlackStandIn, monkeypatch, tiny_model, start_worker):
    install(monkeypatch, {"user": {"storage_mb": 0.03}})
    rt = build_runtime(slack_settings, slack=False)
    data = (DATA / "sst2_small_validation.jsonl").read_bytes()[:20_000]
    data = data[:data.rindex(b"\n") + 1]
    dest = Path(slack_settings.fmbot_data_dir)
    first = download_upload(slack_settings, slack.add_file("test.jsonl", data), dest, Uploader(rt, "U0ALICE", "C0CHAN"))
    assert storage.stored_bytes(rt.redis, "U0ALICE") == len(data)
    assert storage.uploaded_today(rt.redis, "C0CHAN", time.strftime("%Y%m%d", time.gmtime())) == len(data)
    big = slack.add_file("more.jsonl", data + data)
    with pytest.raises(LimitReached, match="more.jsonl is larger than the 0.0 MB your upload limits leave"):
        download_upload(slack_settings, big, dest, Uploader(rt, "U0ALICE", "C0CHAN"))
    assert sorted(p.name for p in dest.iterdir()) == [first.name], "the refused upload left nothing behind"
    second = download_upload(slack_settings, big, dest, Uploader(rt, "U0BOB", "C0CHAN"))  # Bob's own quota

    job = start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(
        model=tiny_model, task="text-classification", test=DataRef(path=str(first), name="test.jsonl"),
        mapping={"sentence1": "input_string", "label": "label"}), requester="U0ALICE"))
    start_worker(slack_settings)
    assert wait_until(lambda: Ledger(rt.redis).get(job.id).state.final, 120)
    assert Ledger(rt.redis).get(job.id).state == JobState.COMPLETED
    assert wait_until(lambda: not first.exists(), 10), "the job's upload is deleted when it ends"
    assert storage.stored_bytes(rt.redis, "U0ALICE") == 0 and second.exists()


def test_retention_sweep_deletes_unused_uploads_and_old_endpoint_logs(redis, tmp_path: Path):
    unused, pinned, mine = tmp_path / "unused.csv", tmp_path / "pinned.csv", tmp_path / "mine.csv"
    for path in (unused, pinned, mine):
        path.write_text("a,b\n1,2\n")
    storage.record_upload(redis, unused, user="U0A", channel=None, size=8)
    storage.record_upload(redis, pinned, user="U0A", channel=None, size=8)
    storage.pin(redis, "job-running", {"test": {"path": str(pinned), "name": "pinned.csv"}})
    logs = tmp_path / "endpoints"
    logs.mkdir()
    old, live = logs / "gone-1.log", logs / "up-2.log"
    for log in (old, live):
        log.write_text("served\n")
        os.utime(log, (time.time() - 7200, time.time() - 7200))
    fresh = logs / "gone-3.log"
    fresh.write_text("stopped a minute ago\n")
    os.utime(fresh, (time.time() + 60, time.time() + 60))
    time.sleep(0.01)
    swept = storage.sweep(redis, retention_hours=0, is_final=lambda job: job != "job-running", logs_dir=logs,
                          live_logs={str(live)})
    assert swept == (1, 1)
    assert not unused.exists() and pinned.exists() and mine.exists(), "a CLI user's own file is never touched"
    assert not old.exists() and live.exists() and fresh.exists()
    assert redis.hkeys(keys.uploads()) == [str(pinned).encode()]

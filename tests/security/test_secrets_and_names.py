"""Secrets stay where they belong and names stay inside the catalog: Redis must ask for a password,
its URL is never printed whole, endpoint processes inherit no credentials, and no model, output or
import name can reach outside the models folder."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from redis import Redis

from bot.redis_server import free_port, server_binary
from handlers.imports import ImportRequest, start_import
from platforms.base import DataRef, FinetuneSpec, Hyperparameters, ImportSpec, ModelRef, PlatformError, SpecError
from platforms.datasets import SplitPlan
from platforms.tasks import Task
from tests.helpers import DATA
from tests.test_observability import fmbot


def doctor_checks(settings) -> dict:
    return {c["name"]: c for c in json.loads(fmbot(settings, "doctor", "--json").stdout)}


def test_doctor_flags_a_redis_that_needs_no_password(slack_settings, slack, tmp_path: Path):
    assert doctor_checks(slack_settings)["redis auth"]["status"] == "problem"
    port = free_port()
    server = subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                               "--save", "", "--requirepass", "s3cret-pass"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://:s3cret-pass@127.0.0.1:{port}/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                Redis.from_url(url).ping()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        checks = doctor_checks(slack_settings.replace(redis_url=url))
        assert checks["redis auth"]["status"] == "ok"
        assert "s3cret-pass" not in json.dumps(checks)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_redis_password_is_masked_when_redis_is_unreachable(settings):
    result = fmbot(settings.replace(redis_url=f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"), "jobs")
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr + result.stdout
    assert "hunter2-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("name", ["../escaped", "team/model", "..", "a..b", "/etc/passwd", "x" * 300])
def test_an_import_name_cannot_leave_the_catalog(bot, name):
    with pytest.raises(SpecError, match="not a valid model name"):
        start_import(bot.runtime, ImportRequest(spec=ImportSpec(model_id="google-bert/bert-base-uncased",
                                                                task="fill-mask", name=name), requester="U0USER"))
    assert not bot.runtime.ledger.recent()


def test_an_output_name_cannot_leave_the_catalog(bot, tiny_model):
    with pytest.raises(SpecError, match="not a valid model name") as refused:
        FinetuneSpec(model=tiny_model, task=Task.TEXT_CLASSIFICATION,
                     train=DataRef(path=str(DATA / "sst2_small_validation.jsonl"), name="sst2.jsonl"),
                     split=SplitPlan(validation=0, test=0.2), mapping={"sentence1": "input_string", "label": "label_string"},
                     hyperparameters=Hyperparameters(epochs=1), compute="cpu", output_name="../../outside")
    assert refused.value.field == "output_name"
    assert not bot.runtime.ledger.recent()


@pytest.mark.parametrize("ref", ["a/../../etc", "ok/../../x:1", "m:../../x", "m:1/2"])
def test_a_model_reference_cannot_walk_the_file_system(ref):
    with pytest.raises(PlatformError, match="is not a model name"):
        ModelRef.parse(ref)


def test_a_card_of_a_path_is_refused(bot, slack):
    from tests.slack_standin import SlackSender

    answer = SlackSender(bot.url).ask("card models/../../../etc", slack)[0]["text"]
    assert "is not a model name" in answer


def test_an_endpoint_process_inherits_no_credentials(redis_server, tmp_path: Path, monkeypatch):
    from platforms.base import DeploySpec
    from platforms.local import LocalPlatform
    from tests.tiny_models import add_tiny_bert

    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-do-not-leak")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "azure-do-not-leak")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-do-not-leak@127.0.0.1:1/0")
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    ref = add_tiny_bert(tmp_path / "models", texts).ref
    platform = LocalPlatform(tmp_path / "models", seed=False, redis=Redis.from_url(redis_server.url))
    info = platform.deploy(DeploySpec(model=ref, endpoint="ep-env", task=Task.TEXT_CLASSIFICATION))
    try:
        for pid in {info.pid, *info.pids}:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            for leaked in (b"xoxb-do-not-leak", b"azure-do-not-leak", b"redis-do-not-leak"):
                assert leaked not in environ, f"pid {pid} inherited {leaked!r}"
            assert b"FMBOT_ENDPOINT_KEY" not in environ, "the key's hash comes from a file, not the environment"
    finally:
        platform.delete_endpoint(info.name)
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-do-not-leak"

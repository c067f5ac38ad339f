"""Shared fixtures: a private Redis, settings pointing at it, a worker process, tiny models."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.redis_server import RedisServer, private_redis
from bot.settings import Settings
from tests.bot_server import BotServer
from tests.tiny_models import add_tiny_bert
from tests.helpers import DATA
from tests.worker_process import WorkerProcess
from tests.slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackStandIn


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# torch on one thread, here and in every child (worker, serving, CLI, benchmark) that inherits the
# environment: tests run tiny models, which gain nothing from more threads, and on a busy machine
# OpenMP threads spinning for a core made a tiny fine-tune five times slower. Set before torch loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with private_redis() as server:
        yield server


@pytest.fixture
def redis(redis_server: RedisServer) -> Iterator[Redis]:
    client = Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty catalog folder (no seed copy, which most tests do not need)."""
    path = tmp_path_factory.mktemp("models")
    (path / ".keep").write_text("")
    return path


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    standin = SlackStandIn().start()
    yield standin
    standin.stop()
    assert standin.limit_problems() == [], "a message or view broke Slack's limits"


@pytest.fixture
def teams(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The Bot Connector / OpenID / managed identity stand-in (tests/teams_standin.py), with the
    managed identity endpoint in the environment, where MSAL (and worker processes) find it."""
    pytest.importorskip("microsoft_agents.hosting.aiohttp")
    from tests.teams_standin import IDENTITY_HEADER, TeamsStandIn

    standin = TeamsStandIn().start()
    monkeypatch.setenv("IDENTITY_ENDPOINT", standin.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    yield standin
    standin.stop()
    assert standin.problems == [], "a card broke the Adaptive Card 1.5 schema or Teams' limits"


def teams_fields(teams) -> dict[str, object]:
    """The settings that point a bot (and its workers) at the Teams stand-in, with a managed identity."""
    from tests.teams_standin import APP_ID

    return {"teams_app_id": APP_ID, "teams_auth_type": "user_managed_identity",
            "teams_openid_metadata_url": teams.metadata_url, "teams_file_hosts": "127.0.0.1"}


@pytest.fixture
def teams_settings(settings: Settings, teams) -> Settings:
    return settings.replace(**teams_fields(teams))


@pytest.fixture
def settings(redis_server: RedisServer, redis: Redis, models_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        redis_url=redis_server.url,
        fmbot_models_dir=models_dir,
        fmbot_data_dir=tmp_path / "data",
        fmbot_progress_interval=0.0,
        fmbot_seed_models=False,
        fmbot_job_retries=0,
        fmbot_policy=DATA / "open_policy.yaml",
    )


@pytest.fixture
def slack_settings(settings: Settings, slack: SlackStandIn) -> Settings:
    return settings.replace(**{
        "slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET, "slack_api_url": slack.api_url,
        "slack_file_hosts": "127.0.0.1",
    })


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator:
    workers: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def bot(slack_settings: Settings) -> Iterator[BotServer]:
    server = BotServer(slack_settings)
    yield server
    server.close()


@pytest.fixture
def tiny_model(slack_settings: Settings) -> str:
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    return add_tiny_bert(Path(slack_settings.fmbot_models_dir), texts).ref

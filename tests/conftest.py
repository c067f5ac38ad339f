"""Shared fixtures: a private Redis, settings pointing at it, a worker process, tiny models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from bot.redis_server import RedisServer, private_redis
from bot.settings import Settings
from tests.bot_server import BotServer
from tests.tiny_models import add_tiny_bert
from tests.slack_standin import BOT_TOKEN, SIGNING_SECRET, SlackStandIn, wait_until  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "FMBOT_", "AZURE"))}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[name.upper()] = str(value)
    env["PYTHONPATH"] = str(ROOT)
    return env


class WorkerProcess:
    def __init__(self, settings: Settings, log: Path):
        self.settings, self.log = settings, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bot.cli", "worker"], env=settings_env(self.settings),
                                        stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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

"""Fixtures of the chaos tests: a Redis with an append-only file, and a tiny model to fine-tune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.redis_server import RedisServer
from bot.settings import Settings
from tests.conftest import DATA
from tests.tiny_models import add_tiny_bert


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tiny_model(slack_settings: Settings) -> str:
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    return add_tiny_bert(Path(slack_settings.fmbot_models_dir), texts).ref

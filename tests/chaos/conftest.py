"""Fixtures of the chaos tests: a Redis with an append-only file (the tiny model is tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.redis_server import RedisServer


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendonly=True)
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()

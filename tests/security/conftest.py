"""Fixtures of the attack tests: a bot behind a strict policy, and signed Slack payloads to play at it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from bot.slack.state import FormState, dump_state
from handlers import policy
from platforms.local.endpoints import EndpointRecord, endpoint_key, endpoints_key, hash_key, key_pickup_key
from tests.bot_server import BotServer
from tests.helpers import DATA
from tests.tiny_models import add_tiny_bert

STRICT_POLICY = """\
admins: [U0ADMIN]
allow:
  search: {channels: [C0OPEN, C0ML, C0OPS]}
  finetune: {channels: [C0ML]}
  deploy: {channels: [C0ML]}
  import: {channels: [C0ML]}
  approve: {users: [U0APPROVER]}
  cancel_others: {channels: [C0OPS]}
"""


@pytest.fixture
def strict_settings(slack_settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "strict-policy.yaml"
    path.write_text(STRICT_POLICY)
    return slack_settings.replace(fmbot_policy=path)


@pytest.fixture
def strict_bot(strict_settings: Settings) -> Iterator[BotServer]:
    server = BotServer(strict_settings)
    yield server
    server.close()
    policy.install(policy.Policy())


@pytest.fixture
def tiny(strict_settings: Settings) -> str:
    texts = [json.loads(line)["input_string"] for line in (DATA / "sst2_small_validation.jsonl").open()]
    return add_tiny_bert(Path(strict_settings.fmbot_models_dir), texts).ref



def form_view(bot: BotServer, callback_id: str, state: FormState, blocks: list[str]) -> dict[str, Any]:
    """A view as fmbot opened it: its callback, its state in private metadata, its input blocks."""
    return {"type": "modal", "callback_id": callback_id, "private_metadata": dump_state(state, bot.runtime.redis),
            "blocks": [{"type": "input", "block_id": b} for b in blocks]}


def unowned_endpoint(bot: BotServer, name: str, owner: str | None = None) -> None:
    """An endpoint record as one made outside fmbot (or before owners were kept) looks: no owner;
    its key `secret-key-123` not picked up yet."""
    record = EndpointRecord(name=name, model="m:1", task="text-classification", instances=1,
                            key_hash=hash_key("secret-key-123"),
                            owner=owner, phase="running", log_file="/nonexistent.log", state_file="/nonexistent.json",
                            created_at=datetime.now(UTC))
    bot.runtime.redis.set(endpoint_key(name), record.model_dump_json())
    bot.runtime.redis.set(key_pickup_key(name), "secret-key-123")
    bot.runtime.redis.sadd(endpoints_key(), name)

"""Endpoint keys, attacked: a Redis dump, a process's environment, a second Show key, someone else's
click and an old key after rotation must give nobody a working key (issue 14, "Secrets and deployment").

The end-to-end test plays them against a running bot (signed Slack HTTP), a real RQ worker, real
Redis and a real local endpoint; the unit tests pin down the hash file the serving processes read.
"""

from __future__ import annotations

import json
import os
import stat
import zlib
from pathlib import Path

import pytest
import requests
from redis import Redis

from bot.slack.ids import ActionId
from handlers.deploy import DeployRequest, start_deploy
from platforms.base import DeploySpec, PlatformError
from platforms.local.endpoints import (
    EndpointRecord,
    KeyHashFile,
    LocalEndpoints,
    endpoint_key,
    endpoints_key,
    hash_key,
    key_pickup_key,
    write_key_hash,
)
from tests.helpers import final_record, wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from workers.ledger import ReplyTarget

OWNER, OTHER, CHANNEL = "U0OWNER", "U0OTHER", "C0CHAN"


def stored(redis: Redis, key: bytes) -> bytes:
    """One key's values as an attacker with a dump (or `redis-cli`) reads them, whatever its type,
    RQ's zlib-compressed job payloads unpacked too."""
    kind = redis.type(key).decode()
    if kind == "string":
        values = [redis.get(key) or b""]
    elif kind == "hash":
        values = [part for pair in redis.hgetall(key).items() for part in pair]
    elif kind == "list":
        values = redis.lrange(key, 0, -1)
    elif kind == "set":
        values = list(redis.smembers(key))
    elif kind == "zset":
        values = redis.zrange(key, 0, -1)
    elif kind == "stream":
        values = [repr(entry).encode() for entry in redis.xrange(key)]
    else:
        values = []
    found = list(values)
    for value in values:
        try:
            found.append(zlib.decompress(value))
        except zlib.error:
            pass
    return b"\n".join(found)


def holders(redis: Redis, secret: str) -> list[bytes]:
    """Every Redis key whose name or value holds `secret`."""
    return [key for key in redis.scan_iter(count=1000) if secret.encode() in key + stored(redis, key)]


def ephemeral_to(slack: SlackStandIn, user: str) -> list[dict]:
    return [c.params for c in slack.of("chat.postEphemeral") if c.params.get("user") == user]


def score(url: str, key: str) -> int:
    return requests.post(url, json={"input_data": ["what a lovely film"]}, headers={"Authorization": f"Bearer {key}"},
                         timeout=30).status_code


def test_a_key_is_kept_only_as_a_hash_shown_once_to_its_owner_and_rotated_at_once(bot, slack: SlackStandIn,
                                                                                   slack_settings, tiny_model,
                                                                                   start_worker):
    worker = start_worker(slack_settings)
    rt = bot.runtime
    sender = SlackSender(bot.url)
    record = start_deploy(rt, DeployRequest(spec=DeploySpec(model=tiny_model, endpoint="keys-ep"), requester=OWNER,
                                            reply_to=ReplyTarget(channel=CHANNEL)))
    try:
        final = final_record(rt.ledger, record.id, timeout=180)
        assert final.state == "completed", worker.output()[-3000:]
        info = rt.platform.get_endpoint("keys-ep")
        served = EndpointRecord.model_validate_json(rt.redis.get(endpoint_key("keys-ep")))

        # Before its owner picks it up, the key is in one place only: the pickup slot, which expires.
        pending = rt.redis.get(key_pickup_key("keys-ep")).decode()
        assert holders(rt.redis, pending) == [key_pickup_key("keys-ep").encode()]
        assert 0 < rt.redis.ttl(key_pickup_key("keys-ep")) <= 24 * 3600
        assert served.key_hash == hash_key(pending) and "key" not in json.loads(rt.redis.get(endpoint_key("keys-ep")))

        # The serving processes were never given the key: not in their environment, not on their command line.
        for pid in {info.pid, *info.pids}:
            for part in ("environ", "cmdline"):
                assert pending.encode() not in Path(f"/proc/{pid}/{part}").read_bytes(), f"the key is in pid {pid}'s {part}"
        mode = stat.S_IMODE(os.stat(served.key_file).st_mode)
        assert mode == 0o600 and served.key_file.read_text() == hash_key(pending)

        # Someone else can neither pick it up (Show key) nor rotate it (button or command).
        sender.button(ActionId.SHOW_KEY, "keys-ep", user=OTHER, channel=CHANNEL)
        sender.button(ActionId.ROTATE_KEY, "keys-ep", user=OTHER, channel=CHANNEL)
        assert "rotating" in sender.ask("rotate-key keys-ep", slack, user=OTHER)[0]["text"].lower()
        refusals = slack.wait_for(lambda: len(ephemeral_to(slack, OTHER)) == 3 and ephemeral_to(slack, OTHER), 20)
        assert all("someone else" in r["text"] for r in refusals), refusals
        assert rt.redis.get(key_pickup_key("keys-ep")).decode() == pending, "a refused click took the key"
        assert score(info.url, pending) == 200

        # The owner gets it once, ephemeral; then Redis holds it nowhere.
        sender.button(ActionId.SHOW_KEY, "keys-ep", user=OWNER, channel=CHANNEL)
        shown = slack.wait_for(lambda: ephemeral_to(slack, OWNER), 20)[0]
        key = shown["text"].split("`")[1]
        assert key == pending
        assert holders(rt.redis, key) == [], "the key is still somewhere in Redis"

        # A second Show key gets no key, and offers Rotate.
        sender.button(ActionId.SHOW_KEY, "keys-ep", user=OWNER, channel=CHANNEL)
        again = slack.wait_for(lambda: ephemeral_to(slack, OWNER)[1:], 20)[0]
        assert key not in json.dumps(again) and "shown once" in again["text"]
        assert ActionId.ROTATE_KEY in json.dumps(again["blocks"])

        # Rotate: the new key comes to the owner alone; the running endpoint refuses the old one at once.
        sender.button(ActionId.ROTATE_KEY, "keys-ep", user=OWNER, channel=CHANNEL)
        rotated = slack.wait_for(lambda: ephemeral_to(slack, OWNER)[2:], 30)[0]
        new_key = rotated["text"].split("`")[1]
        assert new_key != key and "no longer works" in rotated["text"]
        assert score(info.url, key) == 401 and score(info.url, new_key) == 200
        assert rt.platform.get_endpoint("keys-ep").pids == info.pids, "rotation restarted the serving processes"
        assert holders(rt.redis, key) == holders(rt.redis, new_key) == []

        # No key reached a channel: only the owner's ephemeral messages carry one.
        public = json.dumps([c.params for c in slack.calls
                             if not (c.method == "chat.postEphemeral" and c.params.get("user") == OWNER)])
        assert ":rocket:" in public, "the deploy was announced in the channel"
        assert key not in public and new_key not in public, "a key reached a channel message"
    finally:
        rt.platform.delete_endpoint("keys-ep")


def test_the_serving_processes_pick_up_a_replaced_hash_file(tmp_path: Path):
    path = tmp_path / "ep.key"
    write_key_hash(path, hash_key("first"))
    reader = KeyHashFile(path)
    assert reader.matches("first") and not reader.matches("second") and not reader.matches("")
    write_key_hash(path, hash_key("second"))
    assert reader.matches("second") and not reader.matches("first"), "the replaced file was not re-read"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and list(tmp_path.iterdir()) == [path]
    path.unlink()
    assert not reader.matches("second"), "a missing hash file must open nothing"


def test_a_record_stored_before_keys_were_hashed_loses_its_key_when_read(redis: Redis, tmp_path: Path):
    legacy = {"name": "old-ep", "model": "m:1", "task": "text-classification", "instances": 1, "key": "plain-old-key",
              "phase": "running", "log_file": str(tmp_path / "old.log"), "state_file": str(tmp_path / "old.json"),
              "created_at": "2026-11-01T00:00:00Z"}
    redis.set(endpoint_key("old-ep"), json.dumps(legacy))
    redis.sadd(endpoints_key(), "old-ep")
    endpoints = LocalEndpoints(redis, tmp_path)
    assert [e.name for e in endpoints.list()] == ["old-ep"]
    assert b"plain-old-key" not in redis.get(endpoint_key("old-ep"))
    assert EndpointRecord.model_validate_json(redis.get(endpoint_key("old-ep"))).key_hash == hash_key("plain-old-key")
    with pytest.raises(PlatformError, match="deployed before fmbot kept keys hashed") as refused:
        endpoints.rotate_key("old-ep")
    assert "deploy it again" in refused.value.hint

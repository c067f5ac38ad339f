"""`/fm` commands are answered by the answerer process `fmbot serve` forks, and none is lost with it.

The bot is the real `fmbot serve` process (it forks the real answerer) behind real HTTP; the
answerer is stopped and killed with signals, as the kernel or an operator would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from redis import Redis

from bot.redis_server import free_port
from bot.settings import Settings
from bot.slack.answerer import (ALIVE_CHECK_SECONDS, POLL_FOR_SECONDS, Answerer, Answerers, answerer_id,
                                take_back)
from tests.helpers import ROOT, settings_env, wait_until
from tests.slack_standin import SlackSender, SlackStandIn
from workers import keys


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture
def served(slack_settings: Settings, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=settings_env(slack_settings.replace(fmbot_internal_port=free_port())), cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _up(f"{base}/healthz"), 60, about=lambda: log.name)
        yield f"{base}/slack/events", process
    finally:
        process.terminate()
        process.wait(timeout=20)


def _answerer_pid(redis: Redis) -> int:
    answerers = wait_until(lambda: redis.zrangebyscore(keys.slack_answerers(), time.time(), "+inf"), 30)
    assert len(answerers) == 1, answerers
    return int(answerers[0].decode().rsplit(":", 1)[1])


def _waiting(redis: Redis, answerer: str) -> int:
    """Deliveries handed over and not answered: queued, or taken by the answerer (Redis moves one to a
    blocked BLMOVE even while its process is stopped)."""
    return redis.llen(keys.slack_answers()) + redis.llen(keys.slack_answering(answerer))


def _stop_when_idle(redis: Redis, pid: int) -> None:
    """SIGSTOP the answerer once it holds nothing: it posts an answer before it drops the delivery from
    its list, so a stop right after an answer arrives would leave that one counted as waiting."""
    wait_until(lambda: _waiting(redis, answerer_id(pid)) == 0, 10)
    os.kill(pid, signal.SIGSTOP)


def test_serve_answers_in_its_answerer_and_the_bot_takes_over_when_it_dies(served, slack: SlackStandIn,
                                                                             redis: Redis):
    url, bot = served
    pid = _answerer_pid(redis)
    assert pid != bot.pid
    answerer = answerer_id(pid)
    sender = SlackSender(url)
    assert "*fmbot*" in sender.ask("help", slack)[0]["text"]

    _stop_when_idle(redis, pid)
    paused = f"{slack.base_url}/respond/paused"
    try:
        assert sender.command("jobs", response_url=paused).text == ""
        wait_until(lambda: _waiting(redis, answerer) == 1, 10)
        time.sleep(1.0)
        assert slack.answers(paused) == [], "the bot answered what it handed to its answerer"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert slack.wait_for(lambda: slack.answers(paused), 10)[0]["text"] == "You have no jobs yet."

    _stop_when_idle(redis, pid)
    held = [f"{slack.base_url}/respond/held-{n}" for n in range(3)]
    for response_url in held:
        assert sender.command("jobs", response_url=response_url).text == ""
    wait_until(lambda: _waiting(redis, answerer) == len(held), 10)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: redis.zscore(keys.slack_answerers(), answerer) == 0, 10,
               about=lambda: "the bot did not see its answerer die")
    time.sleep(2 * ALIVE_CHECK_SECONDS + 0.1)  # the bot asks whether an answerer is alive twice a second
    after = sender.ask("help", slack)[0]
    assert "*fmbot*" in after["text"]
    for response_url in held:
        assert slack.wait_for(lambda: slack.answers(response_url), 10)[0]["text"] == "You have no jobs yet."
    assert _waiting(redis, answerer) == 0


def test_what_a_lapsed_answerer_held_is_answered_by_the_next_in_order(redis: Redis):
    held = [{"text": f"held {n}", "response_url": f"http://127.0.0.1:9/{n}"} for n in range(3)]
    redis.zadd(keys.slack_answerers(), {"gone:1": time.time() - 1})
    redis.rpush(keys.slack_answering("gone:1"), *[json.dumps(d) for d in held])
    redis.rpush(keys.slack_answers(), json.dumps({"text": "queued", "response_url": "http://127.0.0.1:9/q"}))
    answered: list[str] = []
    answerer = Answerer(redis, lambda delivery: answered.append(delivery["text"]), threads=1)
    thread = threading.Thread(target=answerer.serve, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(answered) == 4, 10)
    finally:
        answerer.stopping.set()
        thread.join(timeout=10)
    assert answered == ["held 0", "held 1", "held 2", "queued"]
    assert redis.llen(keys.slack_answering("gone:1")) == 0 and redis.llen(keys.slack_answering(answerer.id)) == 0
    assert redis.zscore(keys.slack_answerers(), "gone:1") is None
    assert redis.zscore(keys.slack_answerers(), answerer.id) is None, "a stopped answerer leaves no heartbeat"


def test_with_no_answerer_alive_the_bot_answers_what_was_handed_over(redis: Redis):
    answerers = Answerers(redis)
    assert not answerers.hand_off({"text": "help"}, otherwise=lambda: None)
    redis.zadd(keys.slack_answerers(), {"gone:2": time.time() - 1})
    redis.rpush(keys.slack_answering("gone:2"), json.dumps({"text": "taken"}))
    redis.rpush(keys.slack_answers(), json.dumps({"text": "waiting"}))
    assert [d["text"] for d in answerers.orphans()] == ["taken", "waiting"]
    assert take_back(redis) == 0 and redis.llen(keys.slack_answers()) == 0


def test_hand_offs_are_sent_in_order_by_the_sending_thread_not_the_request_thread(redis: Redis, monkeypatch):
    from redis.connection import Connection

    senders: list[str] = []
    send = Connection.send_command
    monkeypatch.setattr(Connection, "send_command",
                        lambda self, *args, **kw: (args[0] == "RPUSH" and senders.append(threading.current_thread().name),
                                                   send(self, *args, **kw))[1])
    redis.zadd(keys.slack_answerers(), {"alive:1": time.time() + 60})
    answerers = Answerers(redis)
    assert answerers.alive()
    senders.clear()
    unsent: list[int] = []
    for n in range(200):
        assert answerers.hand_off({"n": n}, otherwise=lambda n=n: unsent.append(n))
        if n % 50 == 0:
            time.sleep(0.01)
    wait_until(lambda: redis.llen(keys.slack_answers()) == 200, 10)
    assert [json.loads(raw)["n"] for raw in redis.lrange(keys.slack_answers(), 0, -1)] == list(range(200))
    assert unsent == [] and set(senders) == {"fmbot-answerers"}, senders
    time.sleep(POLL_FOR_SECONDS + 0.2)  # asleep now: the next command wakes it
    assert not answerers._polling
    assert answerers.hand_off({"n": 200}, otherwise=lambda: unsent.append(200))
    wait_until(lambda: redis.llen(keys.slack_answers()) == 201, ALIVE_CHECK_SECONDS / 2)


def test_a_hand_off_that_cannot_be_sent_is_answered_here(redis: Redis):
    redis.zadd(keys.slack_answerers(), {"alive:2": time.time() + 60})
    answerers = Answerers(redis)
    assert answerers.alive()
    assert answerers.hand_off({"n": 0}, otherwise=lambda: None)
    wait_until(lambda: redis.llen(keys.slack_answers()) == 1, 10)
    redis.client_kill_filter(_type="normal", skipme=True)  # Redis drops the sending connection, as a restart would
    unsent: list[int] = []
    assert answerers.hand_off({"n": 1}, otherwise=lambda: unsent.append(1))
    wait_until(lambda: unsent == [1], 10, about=lambda: f"unsent {unsent}")
    assert redis.llen(keys.slack_answers()) == 1, "what failed to send is answered here, not also by an answerer"
    assert answerers.hand_off({"n": 2}, otherwise=lambda: unsent.append(2))
    wait_until(lambda: redis.llen(keys.slack_answers()) == 2, 10, about=lambda: "no reconnect after the failure")
    assert unsent == [1]

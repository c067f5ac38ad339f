"""The command answerer: `/fm` commands are answered here, in a process beside the bot's.

The bot acks a command empty and hands it over (`Answerers.hand_off`). Answering it reads the
catalog or the ledger, renders Block Kit and posts to the command's response URL: 0.5-1.5 ms of
the GIL, and on the bot's own threads every ack arriving meanwhile waits for it (ack p99 2.2x a
bare Bolt app's at 20 clients with answers there; benchmarks/ack_latency.py measures both).
`fmbot serve` forks one answerer before it starts any thread (FMBOT_SLACK_ANSWERER); it dies with
the bot. While no answerer is alive the bot answers on its own threads, as a test's bot does.

Nothing handed over is lost with an answerer: it moves each delivery to a list of its own
(`fmbot:slack:answering:{id}`) while answering it, and whoever finds its heartbeat lapsed puts
what it held back at the head of the queue. When the bot sees its answerer die (`lapse`), it
answers on its own threads from the next command on, starting with whatever the answerer held.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import orjson
from redis import Redis
from redis.connection import Connection
from redis.exceptions import RedisError

from workers import keys

log = logging.getLogger(__name__)
THREADS = 8  # answers that wait (a quota read, endpoint probes, a try) must not hold up the rest
HEARTBEAT_SECONDS = 1.0
# An answerer not heard from for this long is taken for dead. It runs at nice 10, so on a busy machine
# a beat can be seconds late (a clean-clone CI run saw one lapse at 5 s); the bot's own watch
# (`lapse`) tells of a death at once, so this bound only matters for answerers of other hosts.
LAPSE_SECONDS = 30.0
ALIVE_CHECK_SECONDS = 0.5

Answer = Callable[[dict[str, Any]], None]


def answerer_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def lapse(redis: Redis, answerer: str) -> None:
    """Take an answerer known to be dead for lapsed now, not when its heartbeat runs out."""
    redis.zadd(keys.slack_answerers(), {answerer: 0}, xx=True)


def take_back(redis: Redis) -> int:
    """Put what lapsed answerers held back at the head of the queue, in the order they took it;
    returns how many deliveries moved."""
    moved = 0
    for answerer in redis.zrangebyscore(keys.slack_answerers(), "-inf", time.time()):
        name = answerer.decode() if isinstance(answerer, bytes) else answerer
        while redis.lmove(keys.slack_answering(name), keys.slack_answers(), "RIGHT", "LEFT") is not None:
            moved += 1
        redis.zrem(keys.slack_answerers(), name)
    return moved


class Answerers:
    """The bot's side: hand a delivery to a live answerer, or learn there is none.

    A hand-off is one RPUSH sent on a connection of its own without waiting for Redis's reply
    (~20 us on the request thread); the replies are read before the next send. Waiting for it, or
    handing off from another thread, cost the ack 0.2-0.3 ms here, as much as answering. Whether
    an answerer is alive is asked twice a second by a thread of its own, never on a request."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._alive = threading.Event()
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._watching = False

    def alive(self) -> bool:
        if not self._watching:
            self._watching = True
            self._refresh()
            threading.Thread(target=_watch, args=(weakref.ref(self),), name="fmbot-answerers", daemon=True).start()
        return self._alive.is_set()

    def hand_off(self, delivery: dict[str, Any]) -> bool:
        if not self.alive():
            return False
        payload = orjson.dumps(delivery)
        with self._lock:
            try:
                connection = self._connected()
                while connection.can_read():
                    connection.read_response()
                connection.send_command("RPUSH", keys.slack_answers(), payload)
            except (RedisError, OSError) as exc:
                log.warning("could not hand a command to the answerer (%s); answering it here", exc)
                self._disconnect()
                return False
        return True

    def orphans(self) -> list[dict[str, Any]]:
        """With no answerer alive: every delivery handed to one and not answered, oldest first, to
        answer here instead."""
        take_back(self.redis)
        taken = []
        while (raw := self.redis.lpop(keys.slack_answers())) is not None:
            taken.append(orjson.loads(raw))
        return taken

    def _connected(self) -> Connection:
        if self._connection is None:
            pool = self.redis.connection_pool
            self._connection = pool.connection_class(**pool.connection_kwargs)
            self._connection.connect()
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None

    def _refresh(self) -> None:
        try:
            alive = self.redis.zcount(keys.slack_answerers(), time.time(), "+inf") > 0
        except RedisError:
            alive = False
        self._alive.set() if alive else self._alive.clear()


def _watch(answerers: weakref.ref[Answerers]) -> None:
    """Refresh whether an answerer is alive until the bot's `Answerers` is gone (it holds no
    reference to it in between, so a bot that is dropped, as in tests, takes its watch with it)."""
    while True:
        time.sleep(ALIVE_CHECK_SECONDS)
        watched = answerers()
        if watched is None:
            return
        watched._refresh()
        del watched


class Answerer:
    """An answering process: `THREADS` threads take deliveries while the main thread keeps the heartbeat."""

    def __init__(self, redis: Redis, answer: Answer, *, threads: int = THREADS):
        self.redis, self.answer, self.threads = redis, answer, threads
        self.id = answerer_id(os.getpid())
        self.stopping = threading.Event()

    def serve(self) -> None:
        self._beat()
        for n in range(self.threads):
            threading.Thread(target=self._take, name=f"fmbot-answer-{n}", daemon=True).start()
        log.info("Slack answerer %s: %d threads", self.id, self.threads)
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            self._beat()
        self.redis.zrem(keys.slack_answerers(), self.id)

    def _beat(self) -> None:
        try:
            self.redis.zadd(keys.slack_answerers(), {self.id: time.time() + LAPSE_SECONDS})
            if moved := take_back(self.redis):
                log.warning("answering %d Slack commands a lapsed answerer had taken", moved)
        except RedisError as exc:
            log.warning("Slack answerer cannot reach Redis (%s); retrying", exc)

    def _take(self) -> None:
        answering = keys.slack_answering(self.id)
        while not self.stopping.is_set():
            try:
                raw = self.redis.blmove(keys.slack_answers(), answering, 1, "LEFT", "RIGHT")
            except RedisError:
                time.sleep(1)
                continue
            if raw is None:
                continue
            try:
                self.answer(orjson.loads(raw))
            except Exception:
                log.exception("answering a Slack command failed")
            finally:
                self.redis.lrem(answering, 1, raw)

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
from collections import deque
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
FLUSH_SECONDS = 0.005
POLL_FOR_SECONDS = 1.0

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

    A hand-off is an append to an in-process outbox; a thread of its own (`_run`) sends what is
    there every `FLUSH_SECONDS` as one RPUSH and reads the reply. Nothing on the request thread
    touches a socket or wakes another thread while commands keep coming: on this 2-vCPU VM any
    send that wakes a sleeping process (Redis) cost the request thread 50 us to 1.4 ms (p50, p90),
    which was most of fmbot's ack over a bare Bolt app's (0.53 ms against 0.31). The thread polls
    while commands come and for `POLL_FOR_SECONDS` after the last, then sleeps until the next one
    sets `_wake` (that one pays a thread wake-up). It also asks twice a second whether an answerer
    is alive, so no request asks. A command whose send fails runs its `otherwise` (answered here).
    The cost: an answer starts up to `FLUSH_SECONDS` later, and a bot killed in that window loses
    the commands in its outbox, as one killed while answering on its own threads loses those.
    """

    def __init__(self, redis: Redis):
        self.redis = redis
        self._alive = threading.Event()
        self._wake = threading.Event()
        self._outbox: deque[tuple[dict[str, Any], Callable[[], None]]] = deque()
        self._polling = False
        self._connection: Connection | None = None
        self._running = False

    def alive(self) -> bool:
        if not self._running:
            self._running = True
            self._refresh()
            threading.Thread(target=_run, args=(weakref.ref(self),), name="fmbot-answerers", daemon=True).start()
        return self._alive.is_set()

    def hand_off(self, delivery: dict[str, Any], otherwise: Callable[[], None]) -> bool:
        """Queue `delivery` for a live answerer; `otherwise` runs, on the sending thread, if it cannot
        be sent. False, and nothing queued, when no answerer is alive."""
        if not self.alive():
            return False
        self._outbox.append((delivery, otherwise))
        if not self._polling:
            self._wake.set()
        return True

    def orphans(self) -> list[dict[str, Any]]:
        """With no answerer alive: every delivery handed to one and not answered, oldest first, to
        answer here instead."""
        take_back(self.redis)
        taken = []
        while (raw := self.redis.lpop(keys.slack_answers())) is not None:
            taken.append(orjson.loads(raw))
        return taken

    def _flush(self) -> bool:
        """Send everything in the outbox, in the order it came; False when there was nothing."""
        taken = []
        while self._outbox:
            taken.append(self._outbox.popleft())
        if not taken:
            return False
        try:
            connection = self._connected()
            connection.send_command("RPUSH", keys.slack_answers(), *(orjson.dumps(d) for d, _ in taken))
            connection.read_response()
        except (RedisError, OSError) as exc:
            log.warning("could not hand %d commands to the answerer (%s); answering them here", len(taken), exc)
            self._disconnect()
            for _, otherwise in taken:
                otherwise()
        return True

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


def _run(answerers: weakref.ref[Answerers]) -> None:
    """Send the outbox and refresh whether an answerer is alive until the bot's `Answerers` is gone
    (it holds no reference to it in between, so a bot that is dropped, as in tests, takes its
    thread with it). Going to sleep, it clears `_polling` before it looks at the outbox a last
    time, so a command appended after that look finds `_polling` off and wakes it."""
    checked = last_sent = float("-inf")
    while True:
        watched = answerers()
        if watched is None:
            return
        now = time.monotonic()
        if now - checked >= ALIVE_CHECK_SECONDS:
            watched._refresh()
            checked = now
        if watched._flush():
            last_sent = now
        wake, outbox = watched._wake, watched._outbox
        watched._polling = now - last_sent < POLL_FOR_SECONDS
        polling = watched._polling
        del watched
        if polling:
            time.sleep(FLUSH_SECONDS)
            continue
        wake.clear()
        if not outbox:
            wake.wait(ALIVE_CHECK_SECONDS)


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

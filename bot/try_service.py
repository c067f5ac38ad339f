"""The warm try service: `/fm try` and `fmbot try` are answered here, where the models are.

`fmbot worker` forks one beside itself (`bot.worker.start_beside_worker`) after importing torch
and transformers (so it starts in milliseconds, not seconds) and before it starts any thread; it
dies with the worker (PR_SET_PDEATHSIG). Its threads take try requests from Redis (handlers/tryout.py has the other
end); the platform keeps the last FMBOT_WARM_MODELS models loaded, one lock each, so concurrent
tries of one model load it once and tries of different models run side by side. While it runs it
keeps `fmbot:try:alive` set, which tells callers there is someone to ask.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from handlers.tryout import answer
from platforms.base import Platform
from workers import keys

log = logging.getLogger(__name__)
THREADS = 4
ALIVE_SECONDS = 10  # how long `fmbot:try:alive` outlives the last refresh
REPLY_SECONDS = 60  # an answer nobody collects is dropped


class TryService:
    def __init__(self, redis: Redis, platform: Platform, *, threads: int = THREADS):
        self.redis, self.platform, self.threads = redis, platform, threads
        self.stopping = threading.Event()

    def serve(self) -> None:
        workers = [threading.Thread(target=self._take, name=f"try-{n}", daemon=True) for n in range(self.threads)]
        for worker in workers:
            worker.start()
        log.info("try service %d: %d threads", os.getpid(), self.threads)
        while not self.stopping.is_set():
            try:
                self.redis.set(keys.try_alive(), str(os.getpid()), ex=ALIVE_SECONDS)
            except RedisConnectionError:
                log.warning("try service cannot reach Redis; retrying")
            self.stopping.wait(ALIVE_SECONDS / 3)

    def _take(self) -> None:
        while not self.stopping.is_set():
            try:
                popped = self.redis.blpop([keys.try_requests()], timeout=1)
            except RedisConnectionError:
                time.sleep(1)
                continue
            if popped is not None:
                self.handle(json.loads(popped[1]))

    def handle(self, request: dict[str, Any]) -> None:
        """Claim the request at once (the caller then knows a service has it), answer it after."""
        if request["expires"] < time.time():
            return  # its caller gave up before any service took it
        reply = keys.try_reply(request["id"])
        self._reply(reply, {"claimed": os.getpid()})
        try:
            body = answer(self.platform, request)
        except Exception:
            log.exception("try of %s failed", request.get("model"))
            body = {"error": {"message": f"trying {request.get('model')} failed",
                              "hint": "An admin finds why in the worker's log"}}
        self._reply(reply, body)

    def _reply(self, reply: str, body: dict[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.rpush(reply, json.dumps(body))
        pipe.expire(reply, REPLY_SECONDS)
        pipe.execute()

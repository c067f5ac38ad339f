"""At-most-once: a delivery runs only if its idempotency key was not claimed before.

Slack retries a request it thinks went unanswered, users double-click Submit, and a modal can be
submitted twice with the same state; each of these must still start one job. The first delivery
claims the key with `SET NX` (atomic across every bot process sharing Redis); later ones find it
taken and do nothing. Keys expire, since Slack stops retrying after minutes.

A claim taken before the work is done is first a lease (`Lease`): short, so that a handler that
crashed or a process that died leaves the key free for Slack's next retry, and made to last its full
time only once the handler finished (`Lease.confirm`); a handler that failed gives it back at once
(`Lease.release`).
"""

from __future__ import annotations

import secrets

from redis import Redis

from workers import keys

DEFAULT_TTL_SECONDS = 15 * 60
LEASE_SECONDS = 30  # outlives one handler's ack path (Slack waits 3 s); shorter than Slack's 1-minute retry
# KEYS[1] the claim, ARGV[1] the lease's token; ARGV[2] the claim's full time, or 0 to give it back.
_SETTLE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then return redis.call('DEL', KEYS[1]) end
redis.call('SET', KEYS[1], 'done', 'EX', ARGV[2])
return 1
"""


def claim(redis: Redis, key: str, ttl: int = DEFAULT_TTL_SECONDS, *, owner: str = "1") -> bool:
    """True for the first caller with `key` within `ttl` seconds, False for every later one."""
    return bool(redis.set(keys.idempotency(key), owner, nx=True, ex=ttl))


class Lease:
    """A claim of `key` held for LEASE_SECONDS while its handler runs; `ttl` once confirmed."""

    def __init__(self, redis: Redis, key: str, ttl: int = DEFAULT_TTL_SECONDS):
        self.redis, self.key, self.ttl = redis, key, ttl
        self.token = f"lease:{secrets.token_hex(8)}"

    def take(self) -> bool:
        return claim(self.redis, self.key, LEASE_SECONDS, owner=self.token)

    def confirm(self) -> bool:
        return bool(self.redis.eval(_SETTLE, 1, keys.idempotency(self.key), self.token, self.ttl))

    def release(self) -> bool:
        return bool(self.redis.eval(_SETTLE, 1, keys.idempotency(self.key), self.token, 0))

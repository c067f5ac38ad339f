"""At-most-once: a delivery runs only if its idempotency key was not claimed before.

Slack retries a request it thinks went unanswered, users double-click Submit, and a modal can be
submitted twice with the same state; each of these must still start one job. The first delivery
claims the key with `SET NX` (atomic across every bot process sharing Redis); later ones find it
taken and do nothing. Keys expire, since Slack stops retrying after minutes.
"""

from __future__ import annotations

from redis import Redis

from workers import keys

DEFAULT_TTL_SECONDS = 15 * 60


def claim(redis: Redis, key: str, ttl: int = DEFAULT_TTL_SECONDS, *, owner: str = "1") -> bool:
    """True for the first caller with `key` within `ttl` seconds, False for every later one."""
    return bool(redis.set(keys.idempotency(key), owner, nx=True, ex=ttl))

"""Fair use: the access policy's `limits` (handlers/policy.py), checked before work is recorded.

Every check reads Redis only (the ledger, the upload counters, local endpoint records), never a
remote platform, so it is cheap enough for the paths that answer a chat; a refusal names what the
user holds, the limit, and the policy key an admin raises. The operator's CLI installs no policy,
so its limits are the defaults (none, but `tries_per_minute` for a chat user).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from handlers import policy
from handlers.errors import UserError
from platforms.base import PlatformError
from platforms.hub import hub_size
from workers import keys, storage
from workers.ledger import JobRecord
from workers.runtime import Runtime

Scope = Literal["user", "channel"]
LEDGER_WINDOW = 500  # jobs a channel count reads, newest first: active jobs are among the recent ones
MB = 1024 * 1024


class LimitReached(UserError):
    """A fair-use limit of the policy: what is held, the limit, and who raises it."""


def refuse(scope: Scope, who: str, name: str, holding: str, limit: str, instead: str) -> LimitReached:
    where = "you" if scope == "user" else "this channel"
    return LimitReached(
        f"{where} already {'have' if scope == 'user' else 'has'} {holding}; the limit is {limit} per {scope}",
        hint=f"{instead}, or ask {admins()} to raise `limits.{scope}.{name}` in the access policy "
             f"(FMBOT_POLICY), or set it for {policy.mention(who)} under `limits.raised`",
        field=name)


def admins() -> str:
    named = policy.current().admins
    return ", ".join(policy.mention(a) for a in named) if named else "whoever runs fmbot"


def _scopes(user: str, channel: str | None) -> Iterable[tuple[Scope, str]]:
    yield "user", user
    if channel:
        yield "channel", channel


def _active(rt: Runtime, scope: Scope, who: str) -> list[JobRecord]:
    if scope == "user":
        records = rt.ledger.recent(user=who, limit=LEDGER_WINDOW)
    else:
        records = [r for r in rt.ledger.recent(limit=LEDGER_WINDOW) if r.reply_to and r.reply_to.channel == who]
    return [r for r in records if not r.state.final]


def _waiting(record: JobRecord) -> bool:
    return record.approval == "pending" or record.state == "queued"


def check_submit(rt: Runtime, record: JobRecord) -> None:
    """Before a job is recorded: its requester's and its channel's active and waiting jobs, and
    for a deployment their endpoints."""
    rules = policy.current().limits
    channel = record.reply_to.channel if record.reply_to else None
    for scope, who in _scopes(record.requester, channel):
        limits = rules.of(scope, who)
        if limits.concurrent_jobs is None and limits.queued_jobs is None and (
                record.kind != "deploy" or limits.endpoints is None):
            continue
        active = _active(rt, scope, who)
        waiting = sum(_waiting(r) for r in active)
        if limits.queued_jobs is not None and waiting >= limits.queued_jobs:
            raise refuse(scope, who, "queued_jobs", f"{waiting} jobs waiting to run", str(limits.queued_jobs),
                         "Wait for one to start, or cancel one (`jobs`, `cancel JOB`)")
        if limits.concurrent_jobs is not None and len(active) >= limits.concurrent_jobs:
            raise refuse(scope, who, "concurrent_jobs", f"{len(active)} jobs queued or running",
                         str(limits.concurrent_jobs), "Wait for one to finish, or cancel one (`jobs`, `cancel JOB`)")
        if record.kind == "deploy" and limits.endpoints is not None:
            held = _endpoints(rt, scope, who, active)
            if held >= limits.endpoints:
                raise refuse(scope, who, "endpoints", f"{held} endpoints", str(limits.endpoints),
                             "Delete one you no longer need (`endpoints`, `delete-endpoint NAME`)")


def _endpoints(rt: Runtime, scope: Scope, who: str, active: list[JobRecord]) -> int:
    """Endpoints up plus deployments on their way. A user's are those they own; a channel's those
    deployed from it (the deploy jobs' records name the endpoint)."""
    coming = sum(r.kind == "deploy" for r in active)
    try:
        up = rt.platform.list_endpoints()
    except PlatformError:
        return coming
    if scope == "user":
        return coming + sum(e.owner == who for e in up)
    names = {e.name for e in up}
    deployed = {r.result.get("endpoint") for r in rt.ledger.recent(limit=LEDGER_WINDOW)
                if r.kind == "deploy" and r.state == "completed" and r.reply_to and r.reply_to.channel == who}
    return coming + len(names & deployed)


def upload_allowance(rt: Runtime, user: str, channel: str | None) -> int | None:
    """Bytes `user` may upload now (None: no limit), from today's uploads and what they keep;
    LimitReached when nothing is left."""
    rules = policy.current().limits
    allowed: int | None = None
    day = datetime.now(UTC).strftime("%Y%m%d")
    for scope, who in _scopes(user, channel):
        limits = rules.of(scope, who)
        if limits.upload_mb_per_day is not None:
            used = storage.uploaded_today(rt.redis, who, day)
            left = int(limits.upload_mb_per_day * MB) - used
            if left <= 0:
                raise refuse(scope, who, "upload_mb_per_day", f"uploaded {used / MB:.0f} MB today",
                             f"{limits.upload_mb_per_day:g} MB a day", "Upload again tomorrow (UTC)")
            allowed = left if allowed is None else min(allowed, left)
        if scope == "user" and limits.storage_mb is not None:
            kept = storage.stored_bytes(rt.redis, who)
            left = int(limits.storage_mb * MB) - kept
            if left <= 0:
                raise refuse(scope, who, "storage_mb", f"{kept / MB:.0f} MB of uploaded datasets kept",
                             f"{limits.storage_mb:g} MB", "Uploads are deleted when their job ends: wait for "
                             "one to finish, or cancel one you no longer need")
            allowed = left if allowed is None else min(allowed, left)
    return allowed


def over_allowance(name: str, allowance: int) -> LimitReached:
    """The refusal for an upload that grew past what the limits left while it streamed."""
    return LimitReached(f"{name} is larger than the {allowance / MB:.1f} MB your upload limits leave now "
                        "(`limits` `storage_mb` and `upload_mb_per_day`)",
                        hint=f"Upload a smaller file, wait for a job to finish (its uploads are then deleted), "
                             f"or ask {admins()} to raise the limit in the access policy (FMBOT_POLICY)",
                        field="upload_mb_per_day")


def check_import(user: str, channel: str | None, folder: Path | None, hub_model: str | None = None) -> int | None:
    """The largest model `user` may import (`import_gb`, None: any), after refusing one over it
    before anything is recorded: a folder is measured on disk, a hub model from the hub's own file
    sizes (only where a limit applies: it is a call to the hub). The worker checks again before it
    downloads."""
    rules = policy.current().limits
    limits = [(scope, who, limit) for scope, who in _scopes(user, channel)
              if (limit := rules.of(scope, who).import_gb) is not None]
    if not limits:
        return None
    size = (sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder is not None
            else hub_size(hub_model) if hub_model else None)
    for scope, who, limit in limits:
        if size is not None and size > limit * 1024 * MB:
            raise refuse(scope, who, "import_gb", f"a model of {size / 1024 / MB:.2f} GB to import",
                         f"{limit:g} GB a model", "Import a smaller model")
    return min(int(limit * 1024 * MB) for _, _, limit in limits)


def check_try(rt: Runtime, user: str) -> None:
    """At most `tries_per_minute` tries a user per clock minute."""
    limit = policy.current().limits.of("user", user).tries_per_minute
    if limit is None:
        return
    minute = int(time.time() // 60)
    key = keys.try_rate(user, minute)
    pipe = rt.redis.pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    count, _ = pipe.execute()
    if count > limit:
        wait = 60 - int(time.time() % 60)
        raise refuse("user", user, "tries_per_minute", f"tried {count - 1} times this minute", f"{limit} a minute",
                     f"Try again in {wait} s")

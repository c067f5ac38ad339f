"""Saving a downloaded dataset to the data folder, for any chat surface.

The size limit is enforced while streaming, so an oversized file never fills the disk, whatever
the sender claimed its size was; the whole body has one deadline, and reads return whatever has
arrived (`read1`), so a host that trickles a byte before each read timeout meets the deadline
instead of holding a thread for ever. A chat user's upload is also held to their fair-use limits
(storage kept, bytes a day: handlers/limits.py) while it streams, and recorded for them, so it is
deleted when the job that reads it ends (workers/storage.py).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bot.settings import Settings
from handlers import limits
from handlers.errors import UserError
from workers import storage
from workers.runtime import Runtime

CHUNK = 1024 * 1024
DOWNLOAD_SECONDS = 120.0  # the whole download, not each read


@dataclass
class Uploader:
    """Who an upload is for: its bytes count against their (and their channel's) limits."""

    rt: Runtime
    user: str
    channel: str | None = None


def save_stream(settings: Settings, response: requests.Response, name: str, dest_dir: Path, *, hint: str,
                uploader: Uploader | None = None) -> Path:
    """Write `response`'s body under `dest_dir` with a random name (keeping the suffix); `hint`
    says what to do instead when the file is over FMBOT_MAX_UPLOAD_MB."""
    allowance = limits.upload_allowance(uploader.rt, uploader.user, uploader.channel) if uploader else None
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{secrets.token_hex(8)}{Path(name).suffix.lower()}"
    deadline = time.monotonic() + DOWNLOAD_SECONDS
    written = 0
    try:
        with target.open("wb") as out:
            while chunk := response.raw.read1(CHUNK, decode_content=True):
                if time.monotonic() > deadline:
                    raise UserError(f"{name} took over {DOWNLOAD_SECONDS:.0f} s to download",
                                    hint="Try again later, or register it as a data asset")
                written += len(chunk)
                if written > settings.max_upload_bytes:
                    raise UserError(f"{name} is over the {settings.fmbot_max_upload_mb} MB limit", hint=hint)
                if allowance is not None and written > allowance:
                    raise limits.over_allowance(name, allowance)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if uploader is not None:
        storage.record_upload(uploader.rt.redis, target, user=uploader.user, channel=uploader.channel, size=written)
    return target

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
from pydantic import BaseModel

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


class DownloadHints(BaseModel):
    """What a surface tells its user to do when the host refuses the download, answers with a
    sign-in page (a token without the right scope gets HTML, not an error), or the file is too big."""

    source: str
    refused: str
    sign_in: str
    too_big: str


def save_stream(settings: Settings, response: requests.Response, name: str, dest_dir: Path,
                hints: DownloadHints, uploader: Uploader | None = None) -> Path:
    """Check `response` is the file, then write its body under `dest_dir` with a random name
    (keeping the suffix), within FMBOT_MAX_UPLOAD_MB, `uploader`'s upload limits and one deadline
    for the whole body."""
    with response:
        if response.status_code != 200:
            raise UserError(f"{name}: {hints.source} answered {response.status_code} to the download",
                            hint=hints.refused)
        if "text/html" in response.headers.get("Content-Type", ""):
            raise UserError(f"{name}: {hints.source} sent a sign-in page instead of the file", hint=hints.sign_in)
        return _write(settings, response, name, dest_dir, hints.too_big, uploader)


def _write(settings: Settings, response: requests.Response, name: str, dest_dir: Path, hint: str,
           uploader: Uploader | None) -> Path:
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

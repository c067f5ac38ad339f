"""Saving a downloaded dataset to the data folder, for any chat surface.

The size limit is enforced while streaming, so an oversized file never fills the disk, whatever
the sender claimed its size was; the whole body has one deadline, and reads return whatever has
arrived (`read1`), so a host that trickles a byte before each read timeout meets the deadline
instead of holding a thread for ever.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import requests
from pydantic import BaseModel

from bot.settings import Settings
from handlers.errors import UserError

CHUNK = 1024 * 1024
DOWNLOAD_SECONDS = 120.0  # the whole download, not each read


class DownloadHints(BaseModel):
    """What a surface tells its user to do when the host refuses the download, answers with a
    sign-in page (a token without the right scope gets HTML, not an error), or the file is too big."""

    source: str
    refused: str
    sign_in: str
    too_big: str


def save_stream(settings: Settings, response: requests.Response, name: str, dest_dir: Path,
                hints: DownloadHints) -> Path:
    """Check `response` is the file, then write its body under `dest_dir` with a random name
    (keeping the suffix), within FMBOT_MAX_UPLOAD_MB and one deadline for the whole body."""
    with response:
        if response.status_code != 200:
            raise UserError(f"{name}: {hints.source} answered {response.status_code} to the download",
                            hint=hints.refused)
        if "text/html" in response.headers.get("Content-Type", ""):
            raise UserError(f"{name}: {hints.source} sent a sign-in page instead of the file", hint=hints.sign_in)
        return _write(settings, response, name, dest_dir, hints.too_big)


def _write(settings: Settings, response: requests.Response, name: str, dest_dir: Path, hint: str) -> Path:
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
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target

"""Saving a downloaded dataset to the data folder, for any chat surface.

The size limit is enforced while streaming, so an oversized file never fills the disk, whatever
the sender claimed its size was.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import requests

from bot.settings import Settings
from handlers.errors import UserError

CHUNK = 1024 * 1024


def save_stream(settings: Settings, response: requests.Response, name: str, dest_dir: Path, *, hint: str) -> Path:
    """Write `response`'s body under `dest_dir` with a random name (keeping the suffix); `hint`
    says what to do instead when the file is over FMBOT_MAX_UPLOAD_MB."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{secrets.token_hex(8)}{Path(name).suffix.lower()}"
    written = 0
    with target.open("wb") as out:
        for chunk in response.iter_content(CHUNK):
            written += len(chunk)
            if written > settings.max_upload_bytes:
                out.close()
                target.unlink(missing_ok=True)
                raise UserError(f"{name} is over the {settings.fmbot_max_upload_mb} MB limit", hint=hint)
            out.write(chunk)
    return target

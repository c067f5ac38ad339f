"""Downloading a file someone shared with the bot in Teams, safely.

Teams describes a shared file with a pre-authorised download link (`file.download.info`), so no
token is sent with it; the link must point at one of the configured hosts (SharePoint/OneDrive by
default, `TEAMS_FILE_HOSTS`), no redirect is followed to anywhere else, and the size limit is
enforced while streaming, so an oversized file never fills the disk.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from bot.downloads import CHUNK, DownloadHints, Uploader, save_stream
from bot.settings import Settings
from bot.teams.state import SharedFile
from handlers.errors import UserError
from platforms.base import DataRef


def host_allowed(settings: Settings, url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    allowed = [h.strip().lower() for h in settings.teams_file_hosts.split(",") if h.strip()]
    return any(host == h or host.endswith("." + h) for h in allowed)


def download(settings: Settings, shared: SharedFile, dest_dir: Path, uploader: Uploader | None = None) -> DataRef:
    limit, limit_mb = settings.max_upload_bytes, settings.fmbot_max_upload_mb
    if shared.size and shared.size > limit:
        raise UserError(f"{shared.name} is {shared.size / CHUNK:.1f} MB; the limit is {limit_mb} MB",
                        hint="Share a smaller file or register it as a data asset")
    url = shared.url
    for _ in range(2):  # the link, and at most one redirect (SharePoint answers with one)
        if not host_allowed(settings, url):
            raise UserError(f"{shared.name}: the download link points at {urlsplit(url).hostname}, not at "
                            "SharePoint or OneDrive", hint="Share the file again in this chat")
        response = requests.get(url, stream=True, timeout=30, allow_redirects=False)
        if not response.is_redirect:
            break
        url = urljoin(url, response.headers["Location"])
        response.close()
    target = save_stream(settings, response, shared.name, dest_dir, TEAMS_DOWNLOADS, uploader)
    return DataRef(path=str(target), name=shared.name)


TEAMS_DOWNLOADS = DownloadHints(
    source="the file's host", refused="Download links expire; share the file again in this chat",
    sign_in="Share the file again in this chat", too_big="Share a smaller file or register it as a data asset")

"""Downloading a file a user uploaded to Slack, safely.

The bot token goes only to Slack's own file hosts (and the configured API host), over https, and
never across a redirect; a redirect is followed once, without the token, and only to an allowed
host; an HTML sign-in page served instead of the file is recognised and explained; the size limit
is enforced while streaming and the whole download has one time limit, so neither an oversized
upload nor a host that trickles bytes can hold the bot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from bot.downloads import CHUNK, DownloadHints, Uploader, save_stream
from bot.settings import Settings
from bot.slack.views.mrkdwn import escape
from handlers.data import check_data_asset
from handlers.errors import UserError
from platforms.base import DataRef


def _allowed_hosts(settings: Settings) -> set[str]:
    hosts = {h.strip().lower() for h in settings.slack_file_hosts.split(",") if h.strip()}
    hosts.add((urlsplit(settings.slack_api_url).hostname or "").lower())
    return hosts


def _checked_link(settings: Settings, url: str, name: str) -> str:
    """https to an allowed host (plain http only where the configured API itself is, as a stand-in is)."""
    parts = urlsplit(url)
    schemes = {"https"} | ({"http"} if settings.slack_api_url.startswith("http://") else set())
    host = (parts.hostname or "").lower()
    if host not in _allowed_hosts(settings):
        raise UserError(f"{name}: the download link points at {host}, not at Slack", hint="Upload the file again")
    if parts.scheme not in schemes:
        raise UserError(f"{name}: the download link is {parts.scheme}://, not https://", hint="Upload the file again")
    return url


def download_upload(settings: Settings, file: dict[str, Any], dest_dir: Path, uploader: Uploader | None = None) -> Path:
    name = file.get("name") or file.get("title") or "upload"
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        raise UserError(f"{name}: Slack sent no download link", hint="Upload the file again")
    _checked_link(settings, url, name)
    limit = settings.max_upload_bytes
    if int(file.get("size") or 0) > limit:
        raise UserError(f"{name} is {int(file['size']) / CHUNK:.1f} MB; the limit is {settings.fmbot_max_upload_mb} MB",
                        hint="Upload a smaller file or register it as a data asset")
    token = settings.secret(settings.slack_bot_token)
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, stream=True, timeout=30,
                            allow_redirects=False)
    if response.is_redirect:
        # Follow once, without the token, and only to an allowed host: a redirect target is never trusted with it.
        moved_to = _checked_link(settings, urljoin(url, response.headers.get("Location", "")), name)
        response.close()
        response = requests.get(moved_to, stream=True, timeout=30, allow_redirects=False)
    return save_stream(settings, response, name, dest_dir, SLACK_DOWNLOADS, uploader)


SLACK_DOWNLOADS = DownloadHints(
    source="Slack", refused="Check the bot has the files:read scope, then upload again",
    sign_in="The bot token lacks files:read or the file is not shared with the bot; reinstall the app",
    too_big="Upload a smaller file or register it as a data asset")


_FILE_ID = re.compile(r"\b(F[A-Z0-9]{6,})\b")


def shared_with(client: Any, info: dict[str, Any], channel: str, user: str, label: str) -> None:
    """A pasted file is read only if it is shared in the form's channel and the requester is a
    member of that channel: the bot token can read files of every conversation the bot is in,
    and a file id must not open a private channel's or a DM's file to whoever types it."""
    shares = info.get("shares") or {}
    places = {*info.get("channels", []), *info.get("groups", []), *info.get("ims", []),
              *shares.get("public", {}), *shares.get("private", {})}
    name = escape(info.get("name") or info.get("id") or "that file")
    refusal = UserError(f"{label}: {name} is not shared in this channel",
                        hint="Share the file in this channel (or upload it in the form), then try again")
    if channel not in places:
        raise refusal
    cursor = None
    while True:
        page = client.conversations_members(channel=channel, cursor=cursor, limit=1000)
        if user in page.get("members", []):
            return
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise refusal


def resolve_data(settings: Settings, client: Any, upload: list[dict[str, Any]] | None, source: str | None,
                 dest_dir: Path, *, label: str, channel: str, user: str,
                 uploader: Uploader | None = None) -> DataRef | None:
    """The dataset a form names: an upload, a file already shared in the form's channel (link or
    id), or a data asset the policy lists; a download counts against `uploader`'s limits."""
    if upload:
        file = upload[0]
        return DataRef(path=str(download_upload(settings, file, dest_dir, uploader)), name=file.get("name") or "upload")
    text = (source or "").strip()
    if not text:
        return None
    if text.startswith("azureml:"):
        if settings.fmbot_platform != "azureml":
            raise UserError(f"{label}: data assets like {text} live in Azure ML",
                            hint="Upload the file instead, or run fmbot with FMBOT_PLATFORM=azureml")
        return DataRef(path=check_data_asset(text, label), name=text)
    match = _FILE_ID.search(text)
    if not match:
        raise UserError(f'{label}: "{text[:80]}" is neither a Slack file link nor a data asset',
                        hint="Paste the file's link (More actions → Copy link) or azureml:<name>:<version>")
    info = client.files_info(file=match.group(1))["file"]
    shared_with(client, info, channel, user, label)
    return DataRef(path=str(download_upload(settings, info, dest_dir, uploader)), name=info.get("name") or match.group(1))

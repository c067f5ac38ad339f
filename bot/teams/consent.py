"""Sending a file to a Teams user: the file consent card, and the upload once they accept.

Teams lets a bot send a file only in a personal chat, and only after the user accepts a
FileConsentCard; Teams then creates a OneDrive upload session and hands the bot its URL in a
`fileConsent/invoke`. The card's accept context comes back through the user's client, so it names
only a one-time offer id: what is sent, and to whom, is read from Redis; the invoking user must be
the one it was made to and still be allowed to see the job, and only then is the offer spent (the
first DEL wins, so two answers cannot both upload; someone else's answer leaves it to its owner). The file is rebuilt from the ledger when accepted, never read from a
path anyone sent.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import PurePath
from collections.abc import Callable
from typing import Any

import requests
from microsoft_agents.activity import Activity, ActivityTypes, Attachment, InvokeResponse
from microsoft_agents.activity.teams import FileConsentCard, FileInfoCard
from microsoft_agents.hosting.core import TurnContext, TurnState
from microsoft_teams.api.models import FileConsentCardResponse, FileUploadInfo
from pydantic import BaseModel, ValidationError

from bot.teams.context import TeamsContext, requester
from bot.teams.files import host_allowed
from handlers import jobs
from handlers.errors import UserError
from workers import keys
from workers.notifier import FileAttachment

CONSENT_TYPE = "application/vnd.microsoft.teams.card.file.consent"
INFO_TYPE = "application/vnd.microsoft.teams.card.file.info"
OFFER_TTL_SECONDS = 24 * 3600
# OneDrive's upload sessions want byte ranges in multiples of 320 KiB ("driveItem: createUploadSession").
UPLOAD_CHUNK = 10 * 320 * 1024
UPLOAD_SECONDS = 60  # each byte range
_RANGE = re.compile(r"^(\d+)-")


class Offer(BaseModel):
    """One file offered on one consent card: which job's file, to whom, in which chat."""

    id: str
    job: str
    user: str
    conversation: str


def offer_predictions(ctx: TeamsContext, activity: Activity, job_id: str) -> Activity | str:
    """In a personal chat, the consent card for the evaluation's predictions; elsewhere, where Teams
    has no file consent, what to do instead."""
    user = requester(activity)
    attachment = jobs.predictions_file(ctx.rt, job_id, user, activity.conversation.id)
    if activity.conversation.conversation_type != "personal":
        return (f"Teams lets fmbot send files only in a personal chat: open a chat with fmbot, send "
                f"`status {job_id.strip()}` and click **Download predictions** there.")
    _check_size(ctx, attachment)
    offer = Offer(id=secrets.token_urlsafe(16), job=job_id.strip(), user=user, conversation=activity.conversation.id)
    ctx.rt.redis.set(keys.teams_offer(offer.id), offer.model_dump_json(), ex=OFFER_TTL_SECONDS)
    context = {"offer": offer.id, "job": offer.job}
    card = FileConsentCard(description=attachment.title, size_in_bytes=len(attachment.content),
                           accept_context=context, decline_context=context)
    return Activity(type=ActivityTypes.message, attachments=[Attachment(
        content_type=CONSENT_TYPE, name=attachment.filename,
        content=card.model_dump(mode="json", by_alias=True, exclude_none=True))])


def accepted(ctx: TeamsContext, activity: Activity, context: Any, upload_info: FileUploadInfo | None) -> Activity:
    """Upload the offered file into the session Teams made, and the card that opens it."""
    offer = _take(ctx, activity, context)
    attachment = jobs.predictions_file(ctx.rt, offer.job, offer.user, offer.conversation)
    _check_size(ctx, attachment)
    if upload_info is None or not upload_info.upload_url or not host_allowed(ctx.settings, upload_info.upload_url):
        raise UserError("Teams gave no upload link on OneDrive or SharePoint for this file",
                        hint="Click **Download predictions** again and accept the new card")
    upload(upload_info.upload_url, attachment.content)
    info = FileInfoCard(unique_id=upload_info.unique_id or "", file_type=upload_info.file_type
                        or PurePath(attachment.filename).suffix.lstrip("."), etag=None)
    return Activity(type=ActivityTypes.message, text=f"Sent {attachment.filename} to your OneDrive.",
                    attachments=[Attachment(content_type=INFO_TYPE, content_url=upload_info.content_url,
                                            name=upload_info.name or attachment.filename,
                                            content=info.model_dump(mode="json", by_alias=True, exclude_none=True))])


async def reply(ctx: TeamsContext, context: TurnContext, answer: Callable[..., Activity | str], *args: Any) -> None:
    """Answer a file consent card in the chat (the SDK then answers the invoke with 200, as Teams
    asks); a refusal is said there too, and nothing is uploaded."""
    try:
        said = await ctx.blocking(answer, ctx, context.activity, *args)
    except Exception as exc:
        said = f"⚠️ {ctx.explain(exc)}"
    await context.send_activity(said)


def unreadable(context: TurnContext) -> bool:
    """A `fileConsent/invoke` the SDK's FileConsent routes would fail to read (or match none of):
    answered here instead, so a malformed one is refused rather than failing the turn."""
    activity = context.activity
    if activity.type != ActivityTypes.invoke or activity.name != "fileConsent/invoke":
        return False
    try:
        return FileConsentCardResponse.model_validate(activity.value).action not in ("accept", "decline")
    except ValidationError:
        return True


async def refuse_unreadable(context: TurnContext, state: TurnState) -> None:
    await context.send_activity("⚠️ Teams sent an answer to a file card that fmbot could not read, so nothing was "
                                "sent. Click **Download predictions** again for a new card.")
    await context.send_activity(Activity(type=ActivityTypes.invoke_response, value=InvokeResponse(status=200)))


def declined(ctx: TeamsContext, activity: Activity, context: Any) -> str:
    offer = _take(ctx, activity, context)
    return f"Not sent: you declined the predictions of {offer.job}."


def _take(ctx: TeamsContext, activity: Activity, context: Any) -> Offer:
    """The offer this answer is to, spent now; refused (and left for its user) unless it was made to
    this user in this chat, and refused once spent."""
    offer_id = context.get("offer") if isinstance(context, dict) else None
    key = keys.teams_offer(offer_id) if isinstance(offer_id, str) and offer_id else None
    raw = ctx.rt.redis.get(key) if key else None
    try:
        offer = Offer.model_validate_json(raw) if raw is not None else None
    except ValidationError:
        offer = None
    if offer is None:
        raise UserError("this file card was already answered, has expired or was not made by fmbot, so nothing "
                        "was sent", hint="Click **Download predictions** on the evaluation's card for a new one")
    if offer.user != requester(activity) or offer.conversation != activity.conversation.id \
            or context.get("job") != offer.job:
        raise UserError("this file card was offered to someone else, so nothing was sent",
                        hint="Ask fmbot for your own: `status <job>` in your chat with it")
    if not ctx.rt.redis.delete(key):  # another answer to the same card got here first
        raise UserError("this file card was already answered, so nothing more was sent",
                        hint="Click **Download predictions** on the evaluation's card for a new one")
    return offer


def _check_size(ctx: TeamsContext, attachment: FileAttachment) -> None:
    if len(attachment.content) > ctx.settings.max_upload_bytes:
        raise UserError(f"{attachment.filename} is over the {ctx.settings.fmbot_max_upload_mb} MB limit",
                        hint="Read the predictions from the job's record instead (`fmbot status <job> --json`)")


def upload(url: str, content: bytes, chunk: int = UPLOAD_CHUNK) -> dict[str, Any]:
    """PUT `content` into a OneDrive upload session, one byte range at a time, as the session asks
    (`nextExpectedRanges`); the last range's answer (200 or 201) is the new driveItem. Never with
    an Authorization header: the session URL is itself the credential, and OneDrive may refuse one."""
    total, start = len(content), 0
    for _ in range(total // chunk + 3):  # every range once, and a couple of the session's own restarts
        end = min(start + chunk, total)
        response = requests.put(url, data=content[start:end], timeout=UPLOAD_SECONDS, allow_redirects=False,
                                headers={"Content-Range": f"bytes {start}-{end - 1}/{total}",
                                         "Content-Length": str(end - start)})
        if response.status_code in (200, 201):
            return response.json()
        if response.status_code != 202:
            raise UserError(f"OneDrive answered {response.status_code} to the upload of bytes {start}-{end - 1}",
                            hint="Click **Download predictions** again and accept the new card")
        start = _next_start(response, end)
    raise UserError("OneDrive kept asking for the same bytes; the upload was stopped",
                    hint="Click **Download predictions** again and accept the new card")


def _next_start(response: requests.Response, sent_to: int) -> int:
    try:
        ranges = json.loads(response.content or b"{}").get("nextExpectedRanges") or []
    except (ValueError, AttributeError):
        ranges = []
    match = _RANGE.match(str(ranges[0])) if ranges else None
    return int(match.group(1)) if match else sent_to

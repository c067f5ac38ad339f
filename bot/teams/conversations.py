"""What the bot remembers of Teams conversations, in Redis, so any process can post to them.

Teams lets a bot post on its own only into a conversation it has a reference to (service URL,
conversation, tenant, bot): every incoming activity refreshes it (the service URL may move), and
the worker that finishes a job hours later, after restarts, reads it back. Files people share
with the bot are kept a week so a form can offer them; users' chat ids (MRIs) so a card can be
refreshed for its owner alone.
"""

from __future__ import annotations

import json
from typing import Any

from microsoft_agents.activity import Activity, ConversationReference
from microsoft_agents.activity.teams import FileDownloadInfo
from pydantic import ValidationError
from redis import Redis

from bot.teams.state import SharedFile
from workers import keys

FILES_KEPT = 20
FILES_TTL_SECONDS = 7 * 24 * 3600
DOWNLOAD_INFO = "application/vnd.microsoft.teams.file.download.info"


def remember(redis: Redis, activity: Activity) -> None:
    """Store the conversation reference, the sender's ids and any file shared in this activity."""
    # Without the message's own id: a later post is a new message (or a reply fmbot chooses), not
    # an answer to whatever was said last.
    reference = activity.get_conversation_reference().model_copy(update={"activity_id": None})
    with redis.pipeline(transaction=False) as pipe:
        pipe.set(keys.teams_conversation(activity.conversation.id),
                 reference.model_dump_json(by_alias=True, exclude_none=True))
        sender = activity.from_property
        if sender is not None and sender.aad_object_id:
            pipe.set(keys.teams_user(sender.aad_object_id), json.dumps({"mri": sender.id, "name": sender.name}))
        for shared in shared_files(activity):
            pipe.lpush(keys.teams_files(activity.conversation.id), shared.model_dump_json())
            pipe.ltrim(keys.teams_files(activity.conversation.id), 0, FILES_KEPT - 1)
            pipe.expire(keys.teams_files(activity.conversation.id), FILES_TTL_SECONDS)
        pipe.execute()


def shared_files(activity: Activity) -> list[SharedFile]:
    """Files in a message, as Teams describes them (`file.download.info`: a pre-authorised link).

    Teams sends these in personal chats with a bot whose manifest says `supportsFiles`; an
    attachment missing its link or id is not a file the bot can read, and is left out. The SDK's
    model requires an `etag` that not every client sends, so a missing one reads as none."""
    found = []
    for item in activity.attachments or []:
        content: Any = item.content
        if item.content_type != DOWNLOAD_INFO or not isinstance(content, dict):
            continue
        try:
            info = FileDownloadInfo.model_validate({"etag": None, "fileType": "", "uniqueId": item.name or "",
                                                    **content})
        except ValidationError:
            continue
        found.append(SharedFile(id=info.unique_id, name=item.name or "file", url=info.download_url,
                                size=content.get("fileSize")))
    return found


def files(redis: Redis, conversation_id: str) -> list[SharedFile]:
    seen, listed = set(), []
    for raw in redis.lrange(keys.teams_files(conversation_id), 0, -1):
        shared = SharedFile.model_validate_json(raw)
        if shared.id not in seen:
            seen.add(shared.id)
            listed.append(shared)
    return listed


def reference(redis: Redis, conversation_id: str) -> ConversationReference | None:
    raw = redis.get(keys.teams_conversation(conversation_id))
    return ConversationReference.model_validate_json(raw) if raw is not None else None


def user(redis: Redis, aad_object_id: str) -> dict[str, str] | None:
    raw = redis.get(keys.teams_user(aad_object_id))
    return json.loads(raw) if raw is not None else None

"""`data` in Teams: the registered datasets, one of them, registering a file shared in the chat, or
deleting a version, answered as cards.

A file shared in the chat is registered with `data register [NAME]` (the newest file shared here)
or the **Register as dataset** button on the bot's answer to the file (named after the file, as
Slack's upload button names it); either downloads it with the same limits a form's file has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from microsoft_agents.activity import Activity

from bot.downloads import Uploader
from bot.teams import conversations, files
from bot.teams.context import TeamsContext, require, requester
from bot.teams.state import SharedFile
from bot.teams.views import data as views
from bot.teams.views.cards import Element
from handlers import data
from handlers.actions import Action
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint

SHARE_FIRST = "Share the file in this chat first (in a channel, with an @mention of fmbot), then register it"


def command_data(ctx: TeamsContext, activity: Activity, rest: str) -> Element | str:
    action, _, names = rest.partition(" ")
    action, names = action.lower() or "list", names.strip()
    if action == "list":
        return views.dataset_list(data.list_datasets(ctx.rt))
    if action == "show" and names:
        return views.dataset_details(data.show_dataset(ctx.rt, names))
    if action == "delete" and names:
        return f"Deleted dataset {data.delete_dataset(ctx.rt, names, requester(activity)).ref}."
    if action == "register":
        shared = conversations.files(ctx.rt.redis, activity.conversation.id)
        if not shared:
            raise UserError("no file has been shared in this chat", hint=SHARE_FIRST)
        return register_shared(ctx, activity, shared[0], names)
    raise UserError(f'"{action}" needs a dataset name' if action in ("show", "delete") else
                    f'"{action}" is not a data action in Teams', hint=usage_hint("data", Surface.TEAMS))


def register_button(ctx: TeamsContext, activity: Activity, values: dict[str, Any]) -> str:
    """Register as dataset, on the bot's answer to a shared file: the button carries the file's id."""
    chosen = str(values.get("file", ""))
    shared = next((f for f in conversations.files(ctx.rt.redis, activity.conversation.id) if f.id == chosen), None)
    if shared is None:
        raise UserError("that file is no longer offered in this chat", hint="Share it in this chat again")
    return register_shared(ctx, activity, shared, "")


def register_shared(ctx: TeamsContext, activity: Activity, shared: SharedFile, name: str) -> str:
    """The file kept as the next version of `name` (default: named after the file)."""
    require(activity, Action.EVALUATE)
    if len(name.split()) > 1:
        raise UserError(f'"{name[:80]}" is more than one word', hint="Send `data register NAME`, NAME one word")
    user, conversation = requester(activity), activity.conversation.id
    ref = files.download(ctx.settings, shared, Path(ctx.settings.fmbot_data_dir), Uploader(ctx.rt, user, conversation))
    info = data.register_dataset(ctx.rt, name or data.name_for_file(shared.name), Path(ref.path), file_name=ref.name,
                                 requester=user, max_bytes=ctx.settings.max_upload_bytes)
    return (f"✅ Registered **{shared.name}** as dataset `{info.ref}` ({info.rows or 0:,} rows). "
            "Forms offer it under Registered dataset.")

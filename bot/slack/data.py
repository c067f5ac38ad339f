"""`/fm data`: the registered datasets, one of them, or deleting a version, answered in the ack."""

from __future__ import annotations

from bot.slack.context import SlashCommand
from bot.slack.views import data as views
from handlers import data
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint


def command_data(cmd: SlashCommand) -> None:
    action, _, rest = cmd.rest.partition(" ")
    action, rest = action.lower() or "list", rest.strip()
    rt = cmd.ctx.rt
    if action == "list":
        cmd.answer(**views.dataset_list(data.list_datasets(rt)))
    elif action == "show" and rest:
        cmd.answer(**views.dataset_details(data.show_dataset(rt, rest)))
    elif action == "delete" and rest:
        info = data.delete_dataset(rt, rest, cmd.user)
        cmd.answer(text=f"Deleted dataset {info.ref}.")
    else:
        raise UserError(f'"{action}" needs a dataset name' if action in ("show", "delete") else
                        f'"{action}" is not a data action', hint=usage_hint("data", Surface.SLACK))

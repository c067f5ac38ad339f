"""`data` in Teams: the registered datasets, one of them, or deleting a version, answered as cards."""

from __future__ import annotations

from microsoft_agents.activity import Activity

from bot.teams.context import TeamsContext, requester
from bot.teams.views import data as views
from bot.teams.views.cards import Element
from handlers import data
from handlers.errors import UserError
from handlers.registry import Surface, usage_hint


def command_data(ctx: TeamsContext, activity: Activity, rest: str) -> Element | str:
    action, _, names = rest.partition(" ")
    action, names = action.lower() or "list", names.strip()
    if action == "list":
        return views.dataset_list(data.list_datasets(ctx.rt))
    if action == "show" and names:
        return views.dataset_details(data.show_dataset(ctx.rt, names))
    if action == "delete" and names:
        return f"Deleted dataset {data.delete_dataset(ctx.rt, names, requester(activity)).ref}."
    raise UserError(f'"{action}" needs a dataset name' if action in ("show", "delete") else
                    f'"{action}" is not a data action in Teams', hint=usage_hint("data", Surface.TEAMS))

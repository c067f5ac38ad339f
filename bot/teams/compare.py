"""`compare` and `leaderboard` in Teams, and the buttons around a comparison.

`compare a b c` answers with a card whose button opens the evaluate dialog once for all the models
(`forms.py` leaves out those that cannot do the chosen task and starts the comparison); the
comparison's card and ranked reply come from the notifier (`views/compare.py`). A finished
fine-tune's card has Compare with base; a ranked reply has Sort (for the clicker) and Re-run.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.activity import Activity

from bot.teams.context import TeamsContext, reply_target, require, requester
from bot.teams.ids import Input
from bot.teams.views.cards import Element, card, heading, open_dialog, text
from bot.teams.views.compare import chart, leaderboard_card, result_card
from handlers import compare
from handlers.actions import Action
from handlers.errors import UserError
from handlers.jobs import job_status
from handlers.registry import COMMANDS, Surface, usage_hint


def command_compare(ctx: TeamsContext, activity: Activity, rest: str) -> Element:
    models = compare.checked_count(rest.split(), hint=f"e.g. `{COMMANDS['compare'].example}`")
    return card([heading(f"Compare {len(models)} models"), text(", ".join(models)),
                 text("The form asks for the test data, maps its columns and picks compute; models that cannot "
                      "do the task you choose are named and left out.", isSubtle=True)],
                [open_dialog("Open the compare form", {"kind": "evaluate", "models": " ".join(models)})])


def command_leaderboard(ctx: TeamsContext, activity: Activity, rest: str) -> Element:
    task, _, dataset = rest.partition(" ")
    if not task:
        raise UserError("say which task", hint=usage_hint("leaderboard", Surface.TEAMS))
    return leaderboard_card(compare.show_leaderboard(ctx.rt, task, dataset.strip() or None))


def picked(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> Element:
    """The models ticked on a search page, as if `compare` had named them (and so as the policy allows it)."""
    require(activity, Action.EVALUATE)
    return command_compare(ctx, activity, " ".join(str(data.get(Input.COMPARE_MODELS) or "").split(",")))


def with_base(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> str:
    """Evaluations, so the clicker needs the policy's evaluate: seeing a job in a shared chat is not enough."""
    require(activity, Action.EVALUATE)
    record = compare.compare_with_base(ctx.rt, str(data.get("job", "")), requester(activity), reply_target(activity),
                                       channel=activity.conversation.id, max_bytes=ctx.settings.max_upload_bytes)
    return f"Comparing the base and the fine-tuned model as {record.id}; its card follows in the chat."


def sorted_result(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> Element:
    """The ranked reply sorted by the chosen metric, for whoever clicked (the chat keeps its order)."""
    record = job_status(ctx.rt, str(data.get("comparison", "")), requester(activity), activity.conversation.id)
    return result_card(record, chart(record), by=str(data.get(Input.SORT_BY) or ""))


def rerun(ctx: TeamsContext, activity: Activity, data: dict[str, Any]) -> str:
    require(activity, Action.EVALUATE)
    record = compare.rerun_comparison(ctx.rt, str(data.get("comparison", "")), requester(activity),
                                      reply_target(activity), channel=activity.conversation.id,
                                      max_bytes=ctx.settings.max_upload_bytes)
    return f"Re-running as {record.id}; its card follows in the chat."

"""Comparing models from Slack: what the compare form submits, `/fm leaderboard`, and the buttons
on comparisons.

`/fm compare a b c` (in `commands.py`, with the other commands that open a form) and the search
page's **Compare** (in `buttons.py`) open the evaluate form once, through the shared steps of
`forms.py`, which call back here: the data step leaves out the models that cannot be evaluated on
the chosen task and says which, and the last step starts the comparison. A finished fine-tune's
**Compare with base**, and a result's **Re-run** and sort menu, are answered here too; **Fine-tune
the best** and **Deploy the best** open the usual forms (`buttons.py`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.slack.context import SlackContext, SlashCommand, later
from bot.slack.ids import ActionId, BlockId
from bot.slack.state import ComputeChoice, FormState
from bot.slack.views import compare as views
from handlers import compare
from handlers.errors import UserError
from handlers.jobs import job_status
from handlers.registry import Surface, usage_hint
from platforms.datasets import ColumnMapping
from platforms.tasks import Task
from workers.ledger import JobRecord, ReplyTarget


def command_leaderboard(cmd: SlashCommand) -> None:
    task, _, dataset = cmd.rest.partition(" ")
    if not task:
        raise UserError("say which task", hint=usage_hint("leaderboard", Surface.SLACK))
    board = compare.show_leaderboard(cmd.ctx.rt, task, dataset.strip() or None)
    cmd.answer(**views.leaderboard_message(board))


def model_errors(ctx: SlackContext, state: FormState) -> dict[str, str]:
    """The data step's check of a comparison's models: those that cannot be evaluated on the task
    are left out (and named on the next steps); fewer than two left is an error on the task."""
    refs, left_out = compare.usable_models(ctx.rt, state.models, Task(state.task))
    if len(refs) < compare.MIN_MODELS:
        reasons = "; ".join(f"{m}: {why}" for m, why in left_out.items())
        return {BlockId.TASK: f"fewer than 2 of these models do {state.task}: {reasons}"}
    state.models, state.left_out = refs, left_out
    return {}


def start_from_form(ctx: SlackContext, state: FormState, choice: ComputeChoice) -> JobRecord:
    task = Task(state.task)
    return compare.start_comparison(ctx.rt, compare.CompareRequest(
        models=state.models, task=task, test=state.test, mapping=ColumnMapping.build(state.mapping, task),
        compute=choice.compute, batch_size=choice.hyper.batch_size, requester=state.user,
        reply_to=ReplyTarget(channel=state.channel), left_out=state.left_out), max_bytes=ctx.settings.max_upload_bytes)


def picked_models(body: dict[str, Any]) -> list[str]:
    """The models ticked on a search page (the checkboxes' state comes with the button's click)."""
    values = (body.get("state") or {}).get("values") or {}
    return [option["value"] for actions in values.values() for element in actions.values()
            if element.get("type") == "checkboxes" for option in element.get("selected_options") or []]


def _value(body: dict[str, Any]) -> str:
    action = body["actions"][0]
    return action.get("value") or (action.get("selected_option") or {}).get("value", "")


def with_base(ctx: SlackContext, client: Any, channel: str, user: str, body: dict[str, Any]) -> None:
    compare.compare_with_base(ctx.rt, _value(body), user, ReplyTarget(channel=channel), channel=channel,
                              max_bytes=ctx.settings.max_upload_bytes)


def rerun(ctx: SlackContext, client: Any, channel: str, user: str, body: dict[str, Any]) -> None:
    compare.rerun_comparison(ctx.rt, _value(body), user, ReplyTarget(channel=channel), channel=channel,
                             max_bytes=ctx.settings.max_upload_bytes)


def on_sort(ack, body, respond, context):
    """Re-sort the ranked reply by another metric, in place."""
    ack()
    ctx: SlackContext = context["fm"]
    comparison_id, _, metric = _value(body).partition(" ")
    channel = (body.get("channel") or {}).get("id")
    record = job_status(ctx.rt, comparison_id, body["user"]["id"], channel)
    reply = views.result_reply(record, by=metric)
    ctx.after_ack(lambda: respond(replace_original=True, text=reply.text, blocks=reply.blocks))


def on_pick(ack):
    """Ticking a box changes nothing until Compare is pressed; Slack still wants the click acked."""
    ack()


def register(app: App) -> None:
    app.action(ActionId.COMPARE_PICK)(on_pick)
    app.action(ActionId.COMPARE_BASE)(later(with_base, failure="Not compared: "))
    app.action(ActionId.COMPARE_RERUN)(later(rerun, failure="Not re-run: "))
    app.action(ActionId.COMPARE_SORT)(on_sort)

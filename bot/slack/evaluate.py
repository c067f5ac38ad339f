"""The evaluate form's submission: the finished form's state becomes an `EvaluateRequest`."""

from __future__ import annotations

from bot.slack.context import SlackContext
from bot.slack.state import ComputeChoice, FormState
from handlers.evaluate import EvaluateRequest, start_evaluation
from platforms.base import EvaluateSpec
from platforms.tasks import Task
from workers.ledger import JobRecord, ReplyTarget


def start_from_form(ctx: SlackContext, state: FormState, choice: ComputeChoice) -> JobRecord:
    """Evaluation runs on one instance, so the compute step's instance count is not read."""
    return start_evaluation(ctx.rt, EvaluateRequest(spec=EvaluateSpec(
        model=state.model, task=Task(state.task), test=state.test, mapping=state.mapping, compute=choice.compute,
        batch_size=choice.hyper.batch_size, rows=ctx.settings.row_policy(state.skip_bad_rows),
    ), requester=state.user, reply_to=ReplyTarget(channel=state.channel)), max_bytes=ctx.settings.max_upload_bytes)

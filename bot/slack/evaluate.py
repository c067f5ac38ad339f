"""The evaluate form's submission: the finished form's state becomes an `EvaluateRequest`."""

from __future__ import annotations

from bot.slack.context import SlackContext
from bot.slack.state import FormState
from handlers.evaluate import EvaluateRequest, start_evaluation
from platforms.base import Hyperparameters
from platforms.datasets import ColumnMapping
from platforms.tasks import Task
from workers.ledger import JobRecord, ReplyTarget


def start_from_form(ctx: SlackContext, state: FormState, compute: str, instances: int,
                    hyper: Hyperparameters) -> JobRecord:
    """Evaluation runs on one instance; `instances` is the shared compute step's field."""
    task = Task(state.task)
    return start_evaluation(ctx.rt, EvaluateRequest(
        model=state.model, task=task, test=state.test, mapping=ColumnMapping.build(state.mapping, task),
        compute=compute, batch_size=hyper.batch_size, requester=state.user,
        reply_to=ReplyTarget(channel=state.channel),
    ), max_bytes=ctx.settings.max_upload_bytes)

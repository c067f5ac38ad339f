"""The fine-tune form's submission: the finished form's state becomes a `FinetuneRequest`."""

from __future__ import annotations

from bot.slack.context import SlackContext
from bot.slack.state import ComputeChoice, FormState
from handlers.finetune import FinetuneRequest, start_finetune
from platforms.base import FinetuneSpec
from platforms.tasks import Task
from workers.ledger import JobRecord, ReplyTarget


def start_from_form(ctx: SlackContext, state: FormState, choice: ComputeChoice) -> JobRecord:
    return start_finetune(ctx.rt, FinetuneRequest(spec=FinetuneSpec(
        model=state.model, task=Task(state.task), train=state.train, validation=state.validation, test=state.test,
        split=state.split(own_validation=state.validation is not None, own_test=state.test is not None),
        mapping=state.mapping, hyperparameters=choice.hyper, compute=choice.compute, instances=choice.instances,
        rows=ctx.settings.row_policy(state.skip_bad_rows),
    ), requester=state.user, reply_to=ReplyTarget(channel=state.channel)), max_bytes=ctx.settings.max_upload_bytes)

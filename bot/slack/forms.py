"""The form steps the evaluate and fine-tune forms share: data → column mapping → compute → job.

What each form finally submits lives in its own room, `bot/slack/finetune.py` and `bot/slack/evaluate.py`.

Each step answers inside Slack's 3 s: quick problems come back inline (`response_action: errors`);
downloads and column reading run after an ack that shows a "checking…" view, which is then
replaced with `views.update` (a modal the user closed meanwhile is fine). The last step's quota
check and submission (this form's, the deploy and import forms') run under `submit_within_budget`.
"""

from __future__ import annotations

import contextvars
import re
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.downloads import Uploader
from bot.slack import compare, evaluate, finetune
from bot.slack.context import SlackContext
from bot.slack.files import resolve_data
from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.state import ComputeChoice, FormState, dump_state, load_state
from bot.slack.views.forms import (NONE_VALUE, checking_step, compute_step, data_step, form_again, mapping_step,
                                   read_values, submitted_view)
from bot.slack.limits import SELECT_OPTIONS
from bot.slack.views.data import preview_text
from bot.slack.views.mrkdwn import escape
from handlers.data import (REGISTERED, check_data, list_datasets, name_for_file, preview, register_dataset,
                           registered_ref)
from platforms.base import DataRef, Hyperparameters, PlatformError, QuotaCheck, SpecError
from handlers import policy
from handlers.costs import comparison_estimates, form_estimates
from platforms.errors import FmbotError
from platforms.datasets import BadRowsError, ColumnMapping, DatasetError, guess_mapping, read_columns
from platforms.tasks import TASKS, Task
from workers import telemetry

ACK_BUDGET_SECONDS = 1.0  # what a form's last step may take before it answers "checking…" instead
Refusal = dict[str, str]  # a problem per block id of the form it is about
_HYPER_BLOCKS = {"epochs": BlockId.EPOCHS, "learning_rate": BlockId.LEARNING_RATE, "batch_size": BlockId.BATCH_SIZE}


QUOTA_BLOCKS = {"compute": BlockId.COMPUTE, "instances": BlockId.INSTANCES}
# Which block of the compute step shows an error about each field of the spec it submits.
COMPUTE_STEP_BLOCKS = {**_HYPER_BLOCKS, **QUOTA_BLOCKS, "hyperparameters.epochs": BlockId.EPOCHS,
                       "hyperparameters.learning_rate": BlockId.LEARNING_RATE,
                       "hyperparameters.batch_size": BlockId.BATCH_SIZE}


INLINE_ERROR_CHARS = 150


def quota_errors(quota: QuotaCheck) -> dict[str, str]:
    """A quota refusal as the form's inline error, on the field it is about, with its advice. The
    first suggestion (a size or count that fits) must survive the length limit, so where both do not
    fit the message loses its trailing "(which quota row)" detail first."""
    message, advice = quota.message, "; ".join(quota.suggestions)
    if quota.suggestions and len(f"{message}. {quota.suggestions[0]}") > INLINE_ERROR_CHARS:
        message = re.sub(r" \([^()]*\)$", "", message)
    return {QUOTA_BLOCKS[quota.field]: (f"{message}. {advice}" if advice else message)[:INLINE_ERROR_CHARS]}


def open_form(ctx: SlackContext, client: Any, trigger_id: str, kind: str, channel: str, user: str,
              model: str | None, models: list[str] | None = None) -> None:
    state = FormState(kind=kind, channel=channel, user=user, model=model, models=models or [])
    client.views_open(trigger_id=trigger_id,
                      view=data_step(state, ctx.rt.platform.list_models(), dump_state(state, ctx.rt.redis)))


def on_data(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    state = load_state(view["private_metadata"], rt.redis)
    values = read_values(view)
    state.model, state.task, state.error = values.get(BlockId.MODEL), values.get(BlockId.TASK), None
    errors: dict[str, str] = {}
    if state.kind == "compare":
        errors = compare.model_errors(ctx, state)
    else:
        try:
            card = rt.platform.get_model(state.model or "")
            if not card.supports(Task(state.task)):
                errors[BlockId.TASK] = f"{card.unsupported(Task(state.task))}; its tasks: {', '.join(card.tasks)}"
        except PlatformError as exc:
            errors[BlockId.MODEL] = str(exc)
    if state.kind == "finetune":
        state.validation_split = float(values.get(BlockId.VALIDATION_SPLIT) or 0)
        state.test_split = float(values.get(BlockId.TEST_SPLIT) or 0)
        own = {"validation": bool(values.get(BlockId.VALIDATION_FILE)), "test": bool(values.get(BlockId.TEST_FILE))}
        try:
            state.split(own_validation=own["validation"], own_test=own["test"]).check()
        except DatasetError as exc:
            errors[BlockId.TEST_SPLIT] = str(exc)
        if not any(values.get(b) for b in (BlockId.TRAIN_FILE, BlockId.TRAIN_DATASET, BlockId.TRAIN_SOURCE)):
            errors[BlockId.TRAIN_FILE] = "Upload a training file, or choose a registered dataset, a file link or data asset below."
    elif not any(values.get(b) for b in (BlockId.TEST_FILE, BlockId.TEST_DATASET, BlockId.TEST_SOURCE)):
        errors[BlockId.TEST_FILE] = "Upload a test file, or choose a registered dataset, a file link or data asset below."
    if errors:
        ack(response_action="errors", errors={k: v[:150] for k, v in errors.items()})
        return
    ack(response_action="update", view=checking_step(state, dump_state(state, rt.redis), "your data"))
    ctx.after_ack(read_data, ctx, client, view["id"], state, values)

def read_data(ctx: SlackContext, client: Any, view_id: str, state: FormState, values: dict[str, Any]) -> None:
    rt, settings = ctx.rt, ctx.settings
    dest = Path(settings.fmbot_data_dir)
    uploader = Uploader(rt, state.user, state.channel)
    try:
        if state.kind == "finetune":
            state.train = registered_ref(rt, _dataset(values.get(BlockId.TRAIN_DATASET))) or resolve_data(
                settings, client, values.get(BlockId.TRAIN_FILE), values.get(BlockId.TRAIN_SOURCE), dest,
                label="training data", channel=state.channel, user=state.user, uploader=uploader)
            state.validation = resolve_data(settings, client, values.get(BlockId.VALIDATION_FILE), None, dest,
                                            label="validation data", channel=state.channel, user=state.user,
                                            uploader=uploader)
        state.test = (registered_ref(rt, _dataset(values.get(BlockId.TEST_DATASET))) if state.kind == "evaluate"
                      else None) or resolve_data(settings, client, values.get(BlockId.TEST_FILE),
                                                 values.get(BlockId.TEST_SOURCE), dest, label="test data",
                                                 channel=state.channel, user=state.user, uploader=uploader)
        primary = state.train or state.test
        state.columns = [] if primary.path.startswith("azureml:") else read_columns(Path(primary.path),
                                                                                    primary.name)
        guesses = guess_mapping(state.columns, Task(state.task))
        state.preview = _preview(state, settings, guesses)
        view = mapping_step(state, dump_state(state, rt.redis), guesses)
    except Exception as exc:
        state.error = ctx.explain(exc)
        view = data_step(state, rt.platform.list_models(), dump_state(state, rt.redis))
    ctx.update_view(client, view_id, view)

def on_mapping(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    state = load_state(view["private_metadata"], rt.redis)
    prefix = f"{BlockId.MAPPING}:"
    chosen = {block.removeprefix(prefix): column for block, column in read_values(view).items()
              if block.startswith(prefix) and column and column != NONE_VALUE}
    try:
        ColumnMapping.build(chosen, Task(state.task))
    except DatasetError as exc:
        spec = TASKS[Task(state.task)]
        block = next((k for k in spec.keys if k not in chosen), spec.keys[0])
        ack(response_action="errors", errors={f"{prefix}{block}": str(exc)[:150]})
        return
    state.mapping, state.error = chosen, None
    ack(response_action="update", view=checking_step(state, dump_state(state, rt.redis), "every row of your data"))
    ctx.after_ack(check_rows, ctx, client, view["id"], state)

def check_rows(ctx: SlackContext, client: Any, view_id: str, state: FormState) -> None:
    """Every row of every file; bad rows come back with a Skip button while skipping is allowed."""
    rt, settings = ctx.rt, ctx.settings
    mapping = ColumnMapping.build(state.mapping, Task(state.task))
    rows = settings.row_policy(state.skip_bad_rows)
    try:
        summaries = {id(ref): check_data(ref, mapping, max_bytes=settings.max_upload_bytes,
                                         training=state.kind == "finetune", rows=rows)
                     for ref in (state.train, state.validation, state.test) if ref is not None}
        state.bad_rows = sum(summary.skipped for summary in summaries.values())
        state.rows = summaries[id(state.train or state.test)].rows
        state.preview = _preview(state, settings, state.mapping)
        actor = policy.actor(state.user, state.channel)
        if state.kind == "compare":
            estimates = comparison_estimates(rt, [rt.platform.get_model(m) for m in state.models], rows=state.rows,
                                             actor=actor)
        else:
            estimates = form_estimates(rt, state.kind, rt.platform.get_model(state.model), rows=state.rows, actor=actor)
        view = compute_step(state, dump_state(state, rt.redis), estimates)
    except BadRowsError as exc:
        within = exc.bad.count <= rows.max_fraction * exc.total
        state.bad_rows = exc.bad.count if within and not state.skip_bad_rows else 0
        state.error = ctx.explain(exc)
        view = mapping_step(state, dump_state(state, rt.redis), state.mapping)
    except Exception as exc:
        state.error = ctx.explain(exc)
        view = mapping_step(state, dump_state(state, rt.redis), state.mapping)
    ctx.update_view(client, view_id, view)


def _dataset(value: str | None) -> DataRef | None:
    return DataRef(path=f"{REGISTERED}{value}", name=value) if value else None


def _preview(state: FormState, settings: Any, mapping: dict[str, str]) -> str | None:
    """The preview of the form's main file under `mapping`, or None while the mapping is incomplete
    or the file cannot be previewed yet (its problems are reported when the mapping is submitted)."""
    primary = state.train or state.test
    if primary is None or primary.path.startswith("azureml:"):
        return None
    try:
        columns = ColumnMapping.build(mapping, Task(state.task))
        parts = sum(1 for split, own in ((state.validation_split, state.validation), (state.test_split, state.test))
                    if split and own is None) if state.kind == "finetune" else 0
        shown = preview(primary, columns, max_bytes=settings.max_upload_bytes, training=state.kind == "finetune",
                        rows=settings.row_policy(state.skip_bad_rows), split_parts=parts,
                        test=state.test if state.train else None)
    except FmbotError:
        return None
    return preview_text(shown)


def on_dataset_options(ack, body, context):
    """The registered datasets whose `name:version` contains what the user typed (at most 100)."""
    query = (body.get("value") or "").strip().lower()
    try:
        infos = list_datasets(context["fm"].rt)
    except PlatformError:
        infos = []
    found = [i for i in reversed(infos) if query in i.ref.lower()][:SELECT_OPTIONS]
    ack(options=[{"text": {"type": "plain_text", "text": f"{i.ref} · {i.rows or 0:,} rows · {i.file_name}"[:75]},
                  "value": i.ref[:150]} for i in found])


def on_skip_bad_rows(ack, body, client, context):
    """"Skip N rows and continue": check again with skipping on, then on to the compute step."""
    ack()
    ctx: SlackContext = context["fm"]
    state = load_state(body["view"]["private_metadata"], ctx.rt.redis)
    state.skip_bad_rows, state.error = True, None
    view_id = body["view"]["id"]

    def recheck() -> None:
        ctx.update_view(client, view_id, checking_step(state, dump_state(state, ctx.rt.redis),
                                                       "your data without its bad rows"))
        check_rows(ctx, client, view_id, state)

    ctx.after_ack(recheck)


def on_register_dataset(ack, body, client, context):
    """"Register as dataset": the form's uploaded file kept as the next version of a dataset named
    after the file, for later forms and `--train data:NAME`."""
    ack()
    ctx: SlackContext = context["fm"]
    state = load_state(body["view"]["private_metadata"], ctx.rt.redis)
    ref = state.train or state.test
    name = name_for_file(ref.name)

    def register() -> None:
        info = register_dataset(ctx.rt, name, Path(ref.path), file_name=ref.name, requester=state.user,
                                max_bytes=ctx.settings.max_upload_bytes)
        ctx.tell(client, state.channel, state.user,
                 f":white_check_mark: Registered *{escape(ref.name)}* as dataset `{escape(info.ref)}` "
                 f"({info.rows or 0:,} rows). Forms offer it under *Registered dataset*.")

    ctx.after_ack_telling(client, state.channel, state.user, register)

def on_compute_options(ack, body, context):
    rt = context["fm"].rt
    state = load_state(body["view"]["private_metadata"], rt.redis)
    model = rt.platform.get_model(state.model) if state.model else None
    options = rt.platform.compute_options(state.kind, model=model)[:100]
    ack(options=[{"text": {"type": "plain_text", "text": o.label[:75]}, "value": o.name[:150]} for o in options])

def on_compute(ack, view, client, context):
    ctx: SlackContext = context["fm"]
    rt = ctx.rt
    state = load_state(view["private_metadata"], rt.redis)
    values = read_values(view)
    compute = values.get(BlockId.COMPUTE) or ""
    instances = int(values.get(BlockId.INSTANCES) or 1)
    try:
        hyper = Hyperparameters(**{name: values[block] for name, block in _HYPER_BLOCKS.items()
                                   if values.get(block) not in (None, "")})
    except SpecError as exc:
        ack(response_action="errors", errors={COMPUTE_STEP_BLOCKS.get(exc.field, BlockId.BATCH_SIZE): exc.on_field[:150]})
        return
    choice = ComputeChoice(compute=compute, instances=instances, hyper=hyper)
    submit_within_budget(ctx, ack, client, view, state, lambda: _start(ctx, state, choice))


def _start(ctx: SlackContext, state: FormState, choice: ComputeChoice) -> Refusal | None:
    rt = ctx.rt
    quota = rt.platform.check_quota(choice.compute, choice.instances,
                                    model=rt.platform.get_model(state.model or state.models[0]))
    if not quota.ok:
        return quota_errors(quota)
    try:
        STARTERS[state.kind](ctx, state, choice)
    except FmbotError as exc:
        fallback = BlockId.COMPUTE if isinstance(exc, PlatformError) else BlockId.BATCH_SIZE
        return {COMPUTE_STEP_BLOCKS.get(exc.field, fallback): exc.on_field}
    return None


# What each form submits once its steps are done: a table by job kind, one room per command.
STARTERS: dict[str, Callable[[SlackContext, FormState, ComputeChoice], Any]] = {
    "finetune": finetune.start_from_form, "evaluate": evaluate.start_from_form, "compare": compare.start_from_form,
}


def submit_within_budget(ctx: SlackContext, ack: Callable[..., Any], client: Any, view: dict[str, Any],
                         state: FormState, submit: Callable[[], Refusal | None]) -> None:
    """A form's last step: `submit` checks what may be a remote call (quota, the endpoints there
    already) and starts the job, off the request thread. Done within ACK_BUDGET_SECONDS, it is
    answered in the ack (the refusal inline, or the form closes); slower, the ack shows "checking…"
    and `views.update` ends it: the form again with the refusal under its field, or where the job
    is followed. `submit` runs once either way: the delivery is claimed (`middleware`)."""
    future = ctx.executor.submit(contextvars.copy_context().run, submit)
    try:
        refusal = future.result(timeout=ACK_BUDGET_SECONDS)
    except FutureTimeout:
        ack(response_action="update", view=checking_step(state, view["private_metadata"], "quota and your request"))
        ctx.after_ack(_finish_late, ctx, client, view, state, future)
        return
    if refusal:
        ack(response_action="errors", errors={block: text[:INLINE_ERROR_CHARS] for block, text in refusal.items()})
    else:
        ack()


def _finish_late(ctx: SlackContext, client: Any, view: dict[str, Any], state: FormState, future: Any) -> None:
    try:
        refusal = future.result()
    except Exception as exc:
        first = next(b["block_id"] for b in view["blocks"] if b.get("type") == "input")
        refusal = {first: ctx.explain(exc, telemetry.current_trace_or_new())}
    ctx.update_view(client, view["id"], form_again(view, refusal) if refusal else submitted_view(
        view, f":white_check_mark: Submitted. fmbot follows it in <#{state.channel}>; you can close this."))


def register(app: App) -> None:
    app.view(CallbackId.FORM_DATA)(on_data)
    app.view(CallbackId.FORM_MAPPING)(on_mapping)
    app.options(ActionId.COMPUTE)(on_compute_options)
    app.options(ActionId.DATASET)(on_dataset_options)
    app.action(ActionId.SKIP_BAD_ROWS)(on_skip_bad_rows)
    app.action(ActionId.REGISTER_DATASET)(on_register_dataset)
    app.view(CallbackId.FORM_COMPUTE)(on_compute)

"""The evaluate and fine-tune dialogs: data → column mapping → compute → job.

A dialog (task module) opens on `task/fetch` and moves on with each `task/submit`: the answer is
the next step's card, the same step again with the problem next to its input, or, once the job is
recorded and queued, a closing message (the job's own card is posted in the conversation).
A step does its checks (downloading the file, reading every row) before it answers, as the Slack
form does after its ack; but Teams gives up on an invoke after about 15 seconds, so a step that
outlives the budget answers a "checking…" card at once and finishes in the background, leaving its
answer in Redis for the card's Continue button. The deploy and import dialogs submit under the same
budget (`dialog_within_budget`): a quota check on Azure ML is a remote call.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from microsoft_agents.hosting.core import TurnContext

from bot.downloads import Uploader
from bot.teams import conversations, files
from bot.teams.context import TeamsContext, reply_target, require, requester
from bot.teams.ids import NOT_USED, Input, Verb
from bot.teams.state import FormState, discard, load, save
from bot.teams.views.cards import Element, attachment
from bot.forms import FORM_TTL_SECONDS
from bot.teams.views.forms import (TITLES, Errors, checking_card, checking_step, compute_step, data_step,
                                     mapping_step, submitted_values, title)
from handlers import compare
from handlers.catalog import require_task
from handlers.data import REGISTERED, check_data, list_datasets, preview, registered_ref
from handlers.errors import UserError
from handlers.evaluate import EvaluateRequest, start_evaluation
from handlers.finetune import FinetuneRequest, start_finetune
from handlers.costs import comparison_estimates, form_estimates
from handlers.actions import Action
from platforms.base import (DataRef, DatasetInfo, EvaluateSpec, FinetuneSpec, Hyperparameters, PlatformError,
                            QuotaCheck, SpecError)
from platforms.errors import FmbotError
from platforms.datasets import BadRowsError, ColumnMapping, DatasetError, Preview, guess_mapping, read_columns
from platforms.tasks import TASKS, Task
from workers import keys

_HYPER_INPUTS = {"epochs": Input.EPOCHS, "learning_rate": Input.LEARNING_RATE, "batch_size": Input.BATCH_SIZE}


def dialog(title: str, content: Element) -> dict[str, Any]:
    return {"task": {"type": "continue", "value": {"title": title, "height": "large", "width": "medium",
                                                    "card": attachment(content)}}}


def quota_error(check: QuotaCheck) -> dict[str, str]:
    """A quota refusal on the input it is about (instances or compute), with its advice."""
    key = Input.INSTANCES if check.field == "instances" else Input.COMPUTE
    return {key: f"{check.message}. {'; '.join(check.suggestions)}" if check.suggestions else check.message}


def closing(message: str) -> dict[str, Any]:
    return {"task": {"type": "message", "value": message}}


def open_form(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    data = (context.activity.value or {}).get("data") or {}
    kind = data.get("kind")
    if kind not in TITLES:
        return closing("This button opens no form; send `help` for the commands.")
    try:
        require(context.activity, Action(kind))
    except UserError as exc:
        return closing(f"⛔ {exc}")
    models = str(data.get("models") or "").split() if kind == "evaluate" else []
    state = save(ctx.rt.redis, FormState(kind=kind, model=data.get("model") or None, models=models,
                                         owner=requester(context.activity)))
    return dialog(title(state), data_step(state, ctx.rt.platform.list_models(),
                                          conversations.files(ctx.rt.redis, context.activity.conversation.id),
                                          _registered(ctx), {}))


def _registered(ctx: TeamsContext) -> list[DatasetInfo]:
    """The registered datasets a form offers; none (rather than no form) where the platform cannot list them."""
    try:
        return list_datasets(ctx.rt)
    except PlatformError:
        return []


def _models_checked(ctx: TeamsContext, state: FormState, errors: Errors) -> None:
    """A comparison's models on the chosen task: those that cannot be evaluated on it are left out
    (and named on the next steps); fewer than two left is an error on the task."""
    try:
        task = Task(state.task)
    except ValueError as exc:
        errors[Input.TASK] = str(exc)
        return
    refs, left_out = compare.usable_models(ctx.rt, state.models, task)
    if len(refs) < compare.MIN_MODELS:
        reasons = "; ".join(f"{m}: {why}" for m, why in left_out.items())
        errors[Input.TASK] = f"fewer than 2 of these models do {state.task}: {reasons}"
        return
    state.models, state.left_out = refs, left_out


def _preview(ctx: TeamsContext, state: FormState, mapping: dict[str, str]) -> Preview | None:
    """The preview of the form's main file under `mapping`, or None while the mapping is incomplete
    or the file cannot be previewed (its problems are reported when the mapping is submitted). It
    looks past the bad rows it may skip, and says how many: the rows check refuses them until
    "Skip N rows and continue"."""
    primary = state.train or state.test
    if primary is None or primary.path.startswith("azureml:"):
        return None
    try:
        parts = sum(1 for split, own in ((state.validation_split, state.validation), (state.test_split, state.test))
                    if split and own is None) if state.kind == "finetune" else 0
        return preview(primary, ColumnMapping.build(mapping, Task(state.task)), max_bytes=ctx.settings.max_upload_bytes,
                       training=state.kind == "finetune", rows=ctx.settings.row_policy(True),
                       split_parts=parts, test=state.test if state.train else None)
    except FmbotError:
        return None


def _data(ctx: TeamsContext, conversation_id: str, chosen: Any, asset: Any, label: str, owner: str) -> DataRef | None:
    """The dataset an input names: a file shared in this conversation (counted against `owner`'s
    upload limits), or a data asset."""
    asset_name = str(asset or "").strip()
    if asset_name:
        if not asset_name.startswith("azureml:"):
            raise UserError(f'{label}: "{asset_name[:80]}" is not a data asset', hint="Write azureml:<name>:<version>")
        if ctx.settings.fmbot_platform != "azureml":
            raise UserError(f"{label}: data assets like {asset_name} live in Azure ML",
                            hint="Share the file in this chat instead, or run fmbot with FMBOT_PLATFORM=azureml")
        return DataRef(path=asset_name, name=asset_name)
    if not chosen or chosen == NOT_USED:
        return None
    shared = next((f for f in conversations.files(ctx.rt.redis, conversation_id) if f.id == chosen), None)
    if shared is None:
        raise UserError(f"{label}: that file is no longer offered here", hint="Share it in this chat again")
    return files.download(ctx.settings, shared, Path(ctx.settings.fmbot_data_dir),
                          Uploader(ctx.rt, owner, conversation_id))


def data_submitted(ctx: TeamsContext, context: TurnContext, state: FormState, values: dict[str, Any]) -> Element:
    rt, conversation = ctx.rt, context.activity.conversation.id
    state.task = values.get(Input.TASK) or None
    errors: Errors = {}
    if state.models:
        _models_checked(ctx, state, errors)
    else:
        state.model = values.get(Input.MODEL) or None
        try:
            model = rt.platform.get_model(state.model or "")
        except PlatformError as exc:
            errors[Input.MODEL] = str(exc)
        else:
            try:
                require_task(model, Task(state.task))
            except (UserError, ValueError) as exc:
                errors[Input.TASK] = str(exc)
    primary = Input.TRAIN if state.kind == "finetune" else Input.TEST
    try:
        if state.kind == "finetune":
            state.validation_split = float(values.get(Input.VALIDATION_SPLIT) or 0)
            state.test_split = float(values.get(Input.TEST_SPLIT) or 0)
            own_validation = values.get(Input.VALIDATION) not in (None, "", NOT_USED)
            own_test = values.get(Input.TEST) not in (None, "", NOT_USED)
            state.split(own_validation=own_validation, own_test=own_test).check()
    except (DatasetError, ValueError) as exc:
        errors[Input.TEST_SPLIT] = str(exc)
    dataset = values.get(Input.DATASET)
    dataset = None if dataset in (None, "", NOT_USED) else str(dataset)
    if not values.get(primary) and not str(values.get(f"{primary}_asset") or "").strip() and not dataset:
        errors[primary] = "Choose a file shared in this chat, a registered dataset, or name a data asset below."
    files_shared, datasets = conversations.files(rt.redis, conversation), _registered(ctx)
    if errors:
        return data_step(state, rt.platform.list_models(), files_shared, datasets, errors)
    try:
        registered = registered_ref(rt, DataRef(path=f"{REGISTERED}{dataset}", name=dataset)) if dataset else None
        if state.kind == "finetune":
            state.train = registered or _data(ctx, conversation, values.get(Input.TRAIN),
                                              values.get(f"{Input.TRAIN}_asset"), "training data", state.owner)
            state.validation = _data(ctx, conversation, values.get(Input.VALIDATION), None, "validation data",
                                     state.owner)
            state.test = _data(ctx, conversation, values.get(Input.TEST), None, "test data", state.owner)
        else:
            state.test = registered or _data(ctx, conversation, values.get(Input.TEST),
                                             values.get(f"{Input.TEST}_asset"), "test data", state.owner)
        data = state.train or state.test
        state.columns = [] if data.path.startswith("azureml:") else read_columns(Path(data.path), data.name)
    except Exception as exc:
        return data_step(state, rt.platform.list_models(), files_shared, datasets,
                         {Input.DATASET if dataset else primary: ctx.explain(exc)})
    guesses = guess_mapping(state.columns, Task(state.task))
    state.preview, state.bad_rows, state.skip_bad_rows = _preview(ctx, state, guesses), 0, False
    return mapping_step(state, guesses, {})


def mapping_submitted(ctx: TeamsContext, state: FormState, values: dict[str, Any]) -> Element:
    prefix = f"{Input.MAPPING}."
    chosen = {name.removeprefix(prefix): column for name, column in values.items()
              if name.startswith(prefix) and column and column != NOT_USED}
    task = Task(state.task)
    try:
        mapping = ColumnMapping.build(chosen, task)
    except DatasetError as exc:
        missing = next((k for k in TASKS[task].keys if k not in chosen), TASKS[task].keys[0])
        return mapping_step(state, chosen, {f"{prefix}{missing}": str(exc)})
    state.mapping = chosen
    return rows_checked(ctx, state)


def rows_checked(ctx: TeamsContext, state: FormState) -> Element:
    """Every row of every file under the form's mapping: on to the compute step, or the mapping step
    again with the problem, and "Skip N rows and continue" while skipping is allowed."""
    mapping = ColumnMapping.build(state.mapping, Task(state.task))
    rows = ctx.settings.row_policy(state.skip_bad_rows)
    try:
        summaries = {id(ref): check_data(ref, mapping, max_bytes=ctx.settings.max_upload_bytes,
                                         training=state.kind == "finetune", rows=rows)
                     for ref in (state.train, state.validation, state.test) if ref is not None}
        state.rows = summaries[id(state.train or state.test)].rows
        state.bad_rows = sum(summary.skipped for summary in summaries.values())
    except BadRowsError as exc:
        # A comparison's evaluations read every row (handlers/compare.py takes no row policy), so
        # only a single job is offered to skip.
        within = exc.bad.count <= rows.max_fraction * exc.total and not state.models
        state.bad_rows = exc.bad.count if within and not state.skip_bad_rows else 0
        return mapping_step(state, state.mapping, {"form": ctx.explain(exc)})
    except Exception as exc:
        return mapping_step(state, state.mapping, {"form": ctx.explain(exc)})
    state.preview = _preview(ctx, state, state.mapping)
    return _compute(ctx, state, {})


def _compute(ctx: TeamsContext, state: FormState, errors: Errors) -> Element:
    """The compute step, with the same money and time estimate per choice as Slack's form shows."""
    rt = ctx.rt
    options = rt.platform.compute_options(state.kind)
    if state.models:
        estimates = comparison_estimates(rt, [rt.platform.get_model(m) for m in state.models], rows=state.rows)
    else:
        estimates = form_estimates(rt, state.kind, rt.platform.get_model(state.model), rows=state.rows)
    return compute_step(state, options, estimates, errors)


def compute_submitted(ctx: TeamsContext, context: TurnContext, state: FormState,
                      values: dict[str, Any]) -> Element | str:
    """The job started (its id), or the compute step again with what is wrong."""
    rt = ctx.rt
    compute = str(values.get(Input.COMPUTE) or "")
    try:
        instances = int(float(values.get(Input.INSTANCES) or 1))
        hyper = Hyperparameters(**{name: values[key] for name, key in _HYPER_INPUTS.items()
                                   if values.get(key) not in (None, "")})
    except SpecError as exc:
        return _compute(ctx, state, {_HYPER_INPUTS.get(exc.field, Input.BATCH_SIZE): exc.on_field})
    except ValueError:
        return _compute(ctx, state, {Input.INSTANCES: "Give a whole number of instances"})
    check = rt.platform.check_quota(compute, instances, model=rt.platform.get_model(state.model or state.models[0]))
    if not check.ok:
        return _compute(ctx, state, quota_error(check))
    task, who, target = Task(state.task), requester(context.activity), reply_target(context.activity)
    rows = ctx.settings.row_policy(state.skip_bad_rows)
    try:
        if state.models:
            record = compare.start_comparison(rt, compare.CompareRequest(
                models=state.models, task=task, test=state.test, mapping=ColumnMapping.build(state.mapping, task),
                compute=compute, batch_size=hyper.batch_size, requester=who, reply_to=target,
                left_out=state.left_out), max_bytes=ctx.settings.max_upload_bytes)
        elif state.kind == "finetune":
            record = start_finetune(rt, FinetuneRequest(spec=FinetuneSpec(
                model=state.model, task=task, train=state.train, validation=state.validation, test=state.test,
                split=state.split(own_validation=state.validation is not None, own_test=state.test is not None),
                mapping=state.mapping, hyperparameters=hyper, compute=compute, instances=instances, rows=rows,
            ), requester=who, reply_to=target), max_bytes=ctx.settings.max_upload_bytes)
        else:
            record = start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(
                model=state.model, task=task, test=state.test, mapping=state.mapping, compute=compute,
                batch_size=hyper.batch_size, rows=rows), requester=who, reply_to=target), max_bytes=ctx.settings.max_upload_bytes)
    except FmbotError as exc:
        return _compute(ctx, state, {"form": str(exc)})
    return record.id


def submit(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    value = context.activity.value or {}
    verb = (value.get("data") or {}).get("verb")
    try:
        form_id, values = submitted_values(value)
        state = load(ctx.rt.redis, form_id, requester(context.activity))
        require(context.activity, Action(state.kind))
    except UserError as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    reached = {Verb.FORM_DATA: True, Verb.FORM_MAPPING: bool(state.task and (state.train or state.test)),
               Verb.FORM_COMPUTE: bool(state.mapping), Verb.FORM_SKIP: bool(state.mapping and state.bad_rows)}
    if not reached.get(verb):
        return closing("This form step is out of order; open the form again.")
    try:
        if verb == Verb.FORM_DATA:
            step = data_submitted(ctx, context, state, values)
        elif verb == Verb.FORM_MAPPING:
            step = mapping_submitted(ctx, state, values)
        elif verb == Verb.FORM_SKIP:
            state.skip_bad_rows = True
            step = rows_checked(ctx, state)
        else:
            step = compute_submitted(ctx, context, state, values)
            if isinstance(step, str):
                discard(ctx.rt.redis, state)
                return closing(f"Started {step}; its card in the chat follows the job.")
    except Exception as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    save(ctx.rt.redis, state)
    return dialog(title(state), step)


async def on_fetch(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    return await ctx.blocking(open_form, ctx, context)


class Handoff:
    """One step's answer, handed to Redis (with whose it is) if the invoke was answered
    "checking…" before it was ready.

    The lock orders the two sides: either the answer is ready before the invoke gives up waiting
    (and goes back in the invoke response), or the pending mark is set first and the answer
    replaces it when ready, so an answer is never lost between them."""

    def __init__(self, ctx: TeamsContext, answer_id: str, owner: str):
        self.redis, self.key, self.owner = ctx.rt.redis, keys.teams_form_answer(answer_id), owner
        self.lock, self.ready, self.handed_off = threading.Lock(), False, False

    def run(self, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        answer = work()
        with self.lock:
            self.ready = True
            if self.handed_off:
                self._store({"answer": answer})
        return answer

    def hand_off(self, still: dict[str, Any]) -> bool:
        """Whether the answer is left to the background (False: it is ready now); `still` is what
        Continue shows until it is."""
        with self.lock:
            if self.ready:
                return False
            self.handed_off = True
            self._store({"still": still})
            return True

    def _store(self, entry: dict[str, Any]) -> None:
        self.redis.set(self.key, json.dumps({"owner": self.owner, **entry}), ex=FORM_TTL_SECONDS)


async def within_budget(ctx: TeamsContext, context: TurnContext, answer_id: str, work: Callable[[], dict[str, Any]],
                        checking: Callable[[bool], dict[str, Any]]) -> dict[str, Any]:
    """`work`'s answer to a dialog's submit, or, when it outlives the invoke budget, `checking(False)`
    at once: its Continue button (verb FORM_RESUME, `answer_id` as the form) then shows
    `checking(True)` until the answer is ready, and then the answer."""
    handoff = Handoff(ctx, answer_id, requester(context.activity))
    task = asyncio.ensure_future(ctx.blocking(handoff.run, work))
    done, _ = await asyncio.wait({task}, timeout=ctx.invoke_budget)
    if done:
        return await task
    try:
        now, still = await ctx.blocking(lambda: (checking(False), checking(True)))
    except UserError as exc:
        return closing(f"⚠️ {ctx.explain(exc)}")
    return now if await ctx.blocking(handoff.hand_off, still) else await task


def resume(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    """The Continue button of a "checking…" card: the finished step, or the same card while it works."""
    answer_id, _ = submitted_values(context.activity.value or {})
    raw = ctx.rt.redis.get(keys.teams_form_answer(answer_id)) if answer_id else None
    if raw is None:
        return closing("Nothing is being checked for this form any more; open it again.")
    entry = json.loads(raw)
    if entry["owner"] != requester(context.activity):
        return closing("⚠️ this form was opened by someone else. Open your own from the card")
    if "answer" not in entry:
        return entry["still"]
    ctx.rt.redis.delete(keys.teams_form_answer(answer_id))
    return entry["answer"]


async def on_submit(ctx: TeamsContext, context: TurnContext) -> dict[str, Any]:
    data = (context.activity.value or {}).get("data") or {}
    if data.get("verb") == Verb.FORM_RESUME:
        return await ctx.blocking(resume, ctx, context)
    form_id = str(data.get("form") or "")

    def checking(still: bool) -> dict[str, Any]:
        state = load(ctx.rt.redis, form_id, requester(context.activity))
        return dialog(title(state), checking_step(state, still=still))

    return await within_budget(ctx, context, form_id, lambda: submit(ctx, context), checking)


async def dialog_within_budget(ctx: TeamsContext, context: TurnContext, dialog_title: str, what: str,
                               work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A one-card dialog's submit (deploy, import) under the invoke budget: its checks (quota, the
    endpoints there already, a model's size on the hub) may be remote calls."""
    answer_id = secrets.token_urlsafe(12)
    return await within_budget(ctx, context, answer_id, work,
                               lambda still: dialog(dialog_title, checking_card(answer_id, what, still=still)))

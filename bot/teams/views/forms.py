"""The evaluate and fine-tune dialogs, step by step, as Adaptive Cards 1.5.

Step 1 names the model, task and data; step 2 maps the file's own columns to the task's keys;
step 3 picks compute (each option shows its free quota) with the most the job may spend. Errors
the bot finds come back on the same step, next to the input they are about. Pure functions of a
FormState.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.teams.ids import NOT_USED, Input, Verb
from bot.teams.limits import CHOICES, MESSAGE_BYTES, message_size
from bot.teams.state import FormState, SharedFile
from bot.teams.views.cards import Element, card, choices, heading, number, text, text_input, warning
from bot.teams.views.data import preview_elements
from platforms.base import ComputeOption, DatasetInfo, ModelCard
from platforms.tasks import TASKS, Task
from workers.costs import Estimate

TITLES = {"finetune": "Fine-tune a model", "evaluate": "Evaluate a model"}
Errors = dict[str, str]


def title(state: FormState) -> str:
    """A comparison is the evaluate form for several models at once."""
    return "Compare models" if state.models else TITLES[state.kind]


def _left_out(state: FormState) -> list[Element]:
    if not state.left_out:
        return []
    return [text("; ".join(f"Left out {model}: {why}" for model, why in state.left_out.items()), color="Warning",
                 size="Small")]


def _submit(title: str, verb: Verb, state: FormState) -> Element:
    """The step's button: it carries the form's id, never its state (see bot/teams/state.py)."""
    return {"type": "Action.Submit", "title": title, "data": {"verb": verb, "form": state.id}}


def _form(state: FormState, body: list[Element], submit: Element, errors: Errors,
          extra: list[Element] | None = None) -> Element:
    if "form" in errors:
        body = [warning(errors["form"])] + body
    return card([heading(title(state))] + body, [submit] + (extra or []))


def fitted(build: Callable[[int], Element]) -> Element:
    """The card built with as many choices per select as fit Teams' size limit (halving from
    CHOICES): a file with hundreds of long column names still gets a dialog, with a note of how
    many are not shown."""
    limit = CHOICES
    while True:
        content = build(limit)
        if limit <= 5 or message_size(content) <= MESSAGE_BYTES:
            return content
        limit //= 2


def _data_choices(input_id: str, label: str, files: list[SharedFile], chosen: str | None, *, required: bool,
                  error: str | None) -> list[Element]:
    options = [(f"{f.name}" + (f" ({f.size / 1024:.0f} KB)" if f.size else ""), f.id) for f in files]
    if not required:
        options = [("(none)", NOT_USED)] + options
    return choices(input_id, label, options, value=chosen or (None if required else NOT_USED), required=False,
                   error=error)


def data_step(state: FormState, models: list[ModelCard], files: list[SharedFile], datasets: list[DatasetInfo],
              errors: Errors) -> Element:
    """Step 1: model (or a comparison's models), task and data (a file shared in this chat, a
    registered dataset or a data asset)."""
    return fitted(lambda limit: _data_step(state, models, files[:limit], datasets[-limit:], errors, limit))


def _datasets(input_id: str, datasets: list[DatasetInfo], error: str | None) -> list[Element]:
    """The registered datasets, newest first (`data list` shows them all)."""
    options = [("(none)", NOT_USED)] + [(f"{i.ref} · {i.rows or 0:,} rows · {i.file_name}", i.ref)
                                        for i in reversed(datasets)]
    return choices(input_id, "…or a registered dataset", options, value=NOT_USED, required=False, error=error)


def _data_step(state: FormState, models: list[ModelCard], files: list[SharedFile], datasets: list[DatasetInfo],
               errors: Errors, limit: int) -> Element:
    model_options = [(m.ref, m.ref) for m in models[:limit]]
    chosen = next((ref for _, ref in model_options if state.model and ref.split(":")[0] == state.model.split(":")[0]),
                  None)
    tasks = [t for t, spec in TASKS.items() if (spec.finetune if state.kind == "finetune" else spec.evaluate)]
    if state.models:
        body: list[Element] = [text("Models: " + ", ".join(state.models)),
                               text("Those that cannot do the task you choose are left out.", isSubtle=True)]
    else:
        body = choices(Input.MODEL, "Model", model_options, value=chosen, error=errors.get(Input.MODEL))
    if len(models) > limit and not state.models:
        body.append(text(f"and {len(models) - limit} more models: narrow with `search` and use its buttons",
                         isSubtle=True))
    body += choices(Input.TASK, "Task", [(t.value, t.value) for t in tasks],
                    value=state.task or Task.TEXT_CLASSIFICATION, error=errors.get(Input.TASK))
    if not files:
        body.append(text("No file has been shared in this chat yet: attach a JSONL, JSON, CSV or TSV file in a "
                         "message to fmbot, then open this form again; or name a data asset below.", isSubtle=True))
    asset_hint = "azureml:<name>:<version>"
    if state.kind == "finetune":
        body += _data_choices(Input.TRAIN, "Training data (a file shared in this chat)", files, None,
                              required=True, error=errors.get(Input.TRAIN))
        if datasets:
            body += _datasets(Input.DATASET, datasets, errors.get(Input.DATASET))
        body += text_input(f"{Input.TRAIN}_asset", "…or training data from a data asset", placeholder=asset_hint)
        body += _data_choices(Input.VALIDATION, "Validation data (optional)", files, None, required=False,
                              error=errors.get(Input.VALIDATION))
        body += number(Input.VALIDATION_SPLIT, "Validation split, % of training data (without a file)",
                       state.validation_split, minimum=0, maximum=90)
        body += _data_choices(Input.TEST, "Test data (optional)", files, None, required=False,
                              error=errors.get(Input.TEST))
        body += number(Input.TEST_SPLIT, "Test split, % of training data (without a file)", state.test_split,
                       minimum=0, maximum=90, error=errors.get(Input.TEST_SPLIT))
    else:
        body += _data_choices(Input.TEST, "Test data (a file shared in this chat)", files, None, required=True,
                              error=errors.get(Input.TEST))
        if datasets:
            body += _datasets(Input.DATASET, datasets, errors.get(Input.DATASET))
        body += text_input(f"{Input.TEST}_asset", "…or test data from a data asset", placeholder=asset_hint)
    return _form(state, body, _submit("Next", Verb.FORM_DATA, state), errors)


def mapping_step(state: FormState, guesses: dict[str, str], errors: Errors) -> Element:
    """Step 2: one select per column key, filled with the file's own columns."""
    return fitted(lambda limit: _mapping_step(state, guesses, errors, limit))


def _mapping_step(state: FormState, guesses: dict[str, str], errors: Errors, limit: int) -> Element:
    spec = TASKS[Task(state.task)]
    data = state.train or state.test
    body: list[Element] = [text(f"Which column of {data.name if data else 'your data'} holds each part of a "
                                f"{state.task} example?")]
    columns = [c for c in guesses.values() if c in state.columns]
    columns += [c for c in state.columns if c not in columns][: max(limit - 1 - len(columns), 0)]
    for key in spec.keys:
        required = key in spec.required_keys
        options = [(c, c) for c in columns] if required else [("(not used)", NOT_USED)] + [(c, c) for c in columns]
        guess = guesses.get(key)
        value = guess if guess in columns else (None if required else NOT_USED)
        body += choices(f"{Input.MAPPING}.{key}", key + ("" if required else " (optional)"), options, value=value,
                        required=required, error=errors.get(f"{Input.MAPPING}.{key}"))
    if len(state.columns) > len(columns):
        body.append(text(f"and {len(state.columns) - len(columns)} more columns not shown", isSubtle=True))
    if spec.alternatives:
        body.append(text("Map " + " or ".join(" + ".join(group) for group in spec.alternatives) + ".", isSubtle=True))
    if state.preview is not None:
        body += preview_elements(state.preview)
    body += _left_out(state)
    skip = [_submit(f"Skip {state.bad_rows:,} rows and continue", Verb.FORM_SKIP, state)] if state.bad_rows else []
    return _form(state, body, _submit("Next", Verb.FORM_MAPPING, state), errors, skip)


def compute_step(state: FormState, options: list[ComputeOption], estimates: list[tuple[str, Estimate]],
                 errors: Errors) -> Element:
    """Step 3: compute (labels show free quota), settings, and what each choice would take and cost."""
    return fitted(lambda limit: _compute_step(state, options[:limit], estimates, errors))


def _compute_step(state: FormState, options: list[ComputeOption], estimates: list[tuple[str, Estimate]],
                  errors: Errors) -> Element:
    body: list[Element] = choices(Input.COMPUTE, "Compute", [(o.label, o.name) for o in options],
                                  value=options[0].name if options else None, error=errors.get(Input.COMPUTE))
    shown = {o.name for o in options}
    spend = [f"{name}: {estimate.summary()}" for name, estimate in estimates if name in shown][:5]
    rows = f" ({state.rows:,} rows, default settings, 1 instance)" if state.rows else ""
    body.append(text(f"Estimate{rows}: " + ("; ".join(spend) if spend else "no estimate for these choices")
                     + (f". {estimates[0][1].basis}." if estimates else "."), isSubtle=True, size="Small"))
    body += number(Input.INSTANCES, "Instances", 1, minimum=1, maximum=16, error=errors.get(Input.INSTANCES))
    if state.kind == "finetune":
        body += number(Input.EPOCHS, "Epochs", 3, minimum=1, maximum=100, error=errors.get(Input.EPOCHS))
        body += number(Input.LEARNING_RATE, "Learning rate", 0.00005, error=errors.get(Input.LEARNING_RATE))
    body += number(Input.BATCH_SIZE, "Batch size", 16, minimum=1, maximum=1024, error=errors.get(Input.BATCH_SIZE))
    mapping = ", ".join(f"{k}={v}" for k, v in state.mapping.items())
    body.append(text(f"{', '.join(state.models) or state.model} · {state.task} · mapping {mapping}"
                     + (f" · {state.bad_rows:,} bad rows skipped" if state.skip_bad_rows and state.bad_rows else ""),
                     isSubtle=True, size="Small"))
    body += _left_out(state)
    return _form(state, body, _submit("Start", Verb.FORM_COMPUTE, state), errors)


def checking_step(state: FormState, *, still: bool) -> Element:
    """What a step that is still reading the data answers; Continue shows the next step once it is ready."""
    data = state.train or state.test
    lines = [text(f"Checking {data.name if data else 'your data'}: a big file takes a while to read "
                  "through. Press Continue in a moment.")]
    if still:
        lines.append(text("Still checking…", isSubtle=True))
    return _form(state, lines, _submit("Continue", Verb.FORM_RESUME, state), {})


def checking_card(answer_id: str, what: str, *, still: bool) -> Element:
    """A one-card dialog's "checking…" answer; Continue shows the outcome once it is ready."""
    lines = [text(f"Checking {what}: this takes a moment. Press Continue to see how it went.")]
    if still:
        lines.append(text("Still checking…", isSubtle=True))
    return card(lines, [{"type": "Action.Submit", "title": "Continue",
                         "data": {"verb": Verb.FORM_RESUME, "form": answer_id}}])


def submitted_values(value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The form id and the inputs of a `task/submit` (Teams merges them into `data`)."""
    data = dict(value.get("data") or {})
    form_id = str(data.pop("form", "") or "")
    for control in ("verb", "msteams", "state"):
        data.pop(control, None)
    return form_id, data

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
from platforms.base import ComputeOption, ModelCard
from platforms.tasks import TASKS, Task

TITLES = {"finetune": "Fine-tune a model", "evaluate": "Evaluate a model"}
Errors = dict[str, str]


def _submit(title: str, verb: Verb, state: FormState) -> Element:
    """The step's button: it carries the form's id, never its state (see bot/teams/state.py)."""
    return {"type": "Action.Submit", "title": title, "data": {"verb": verb, "form": state.id}}


def _form(state: FormState, body: list[Element], submit: Element, errors: Errors) -> Element:
    if "form" in errors:
        body = [warning(errors["form"])] + body
    return card([heading(TITLES[state.kind])] + body, [submit])


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


def data_step(state: FormState, models: list[ModelCard], files: list[SharedFile], errors: Errors) -> Element:
    """Step 1: model, task and data (a file shared in this chat, or a data asset)."""
    return fitted(lambda limit: _data_step(state, models, files[:limit], errors, limit))


def _data_step(state: FormState, models: list[ModelCard], files: list[SharedFile], errors: Errors,
               limit: int) -> Element:
    model_options = [(m.ref, m.ref) for m in models[:limit]]
    chosen = next((ref for _, ref in model_options if state.model and ref.split(":")[0] == state.model.split(":")[0]),
                  None)
    tasks = [t for t, spec in TASKS.items() if (spec.finetune if state.kind == "finetune" else spec.evaluate)]
    body: list[Element] = choices(Input.MODEL, "Model", model_options, value=chosen, error=errors.get(Input.MODEL))
    if len(models) > limit:
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
    return _form(state, body, _submit("Next", Verb.FORM_MAPPING, state), errors)


def compute_step(state: FormState, options: list[ComputeOption], max_gpu_hours: dict[str, float],
                 errors: Errors) -> Element:
    """Step 3: compute (labels show free quota), settings, and the most each choice may spend."""
    return fitted(lambda limit: _compute_step(state, options[:limit], max_gpu_hours, errors))


def _compute_step(state: FormState, options: list[ComputeOption], max_gpu_hours: dict[str, float],
                  errors: Errors) -> Element:
    body: list[Element] = choices(Input.COMPUTE, "Compute", [(o.label, o.name) for o in options],
                                  value=options[0].name if options else None, error=errors.get(Input.COMPUTE))
    shown = {o.name for o in options}
    spend = [f"{name}: up to {hours:g} GPU instance-hours per instance" for name, hours in max_gpu_hours.items()
             if hours and name in shown][:5]
    body.append(text("Cost: " + ("; ".join(spend) if spend else "CPU compute spends no GPU hours")
                     + ". A job may run until its timeout.", isSubtle=True, size="Small"))
    body += number(Input.INSTANCES, "Instances", 1, minimum=1, maximum=16, error=errors.get(Input.INSTANCES))
    if state.kind == "finetune":
        body += number(Input.EPOCHS, "Epochs", 3, minimum=1, maximum=100, error=errors.get(Input.EPOCHS))
        body += number(Input.LEARNING_RATE, "Learning rate", 0.00005, error=errors.get(Input.LEARNING_RATE))
    body += number(Input.BATCH_SIZE, "Batch size", 16, minimum=1, maximum=1024, error=errors.get(Input.BATCH_SIZE))
    mapping = ", ".join(f"{k}={v}" for k, v in state.mapping.items())
    body.append(text(f"{state.model} · {state.task} · mapping {mapping}", isSubtle=True, size="Small"))
    return _form(state, body, _submit("Start", Verb.FORM_COMPUTE, state), errors)


def checking_step(state: FormState, *, still: bool) -> Element:
    """What a step that is still reading the data answers; Continue shows the next step once it is ready."""
    data = state.train or state.test
    lines = [text(f"Checking {data.name if data else 'your data'}: a big file takes a while to read "
                  "through. Press Continue in a moment.")]
    if still:
        lines.append(text("Still checking…", isSubtle=True))
    return _form(state, lines, _submit("Continue", Verb.FORM_RESUME, state), {})


def submitted_values(value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The form id and the inputs of a `task/submit` (Teams merges them into `data`)."""
    data = dict(value.get("data") or {})
    form_id = str(data.pop("form", "") or "")
    for control in ("verb", "msteams", "state"):
        data.pop(control, None)
    return form_id, data

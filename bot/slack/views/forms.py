"""The step-by-step evaluate and fine-tune forms, and reading submitted values back.

Step 1 names the model, task and data; step 2 maps the file's own columns to the task's keys;
step 3 picks compute (with free quota) and settings. Views are pure functions of a FormState.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    ExternalDataSelectElement,
    InputBlock,
    MarkdownTextObject,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.views import View

from bot.slack.ids import ActionId, BlockId, CallbackId
from bot.slack.limits import OPTION_TEXT, SELECT_OPTIONS, clip
from bot.slack.state import FormState
from bot.slack.views.mrkdwn import escape
from platforms.base import ModelCard
from platforms.tasks import TASKS, Task
from workers.costs import Estimate

FILE_TYPES = ["jsonl", "json", "csv", "tsv"]
NONE_VALUE = "__none__"
_TITLES = {"finetune": "Fine-tune a model", "evaluate": "Evaluate a model", "compare": "Compare models",
           "deploy": "Deploy a model", "import": "Import a model"}
# The fields of a submitted view that `views.update` takes back; the rest (id, hash, state…) is Slack's.
_VIEW_FIELDS = ("type", "callback_id", "title", "submit", "close", "private_metadata")


def option(text: str, value: str | None = None) -> Option:
    return Option(text=text[:OPTION_TEXT], value=(value or text)[:150])


def _modal(callback: CallbackId, state: FormState, metadata: str, blocks: list[Any], *, submit: str | None) -> dict:
    if state.error:
        blocks = [SectionBlock(block_id=BlockId.FORM_ERROR,
                               text=MarkdownTextObject(text=clip(f":warning: {state.error}", 3000)))] + blocks
    view = View(type="modal", callback_id=callback, title=_TITLES[state.kind], submit=submit, close="Cancel",
                private_metadata=metadata, blocks=blocks)
    return view.to_dict()


def _file_block(block: BlockId, label: str, hint: str, *, optional: bool) -> InputBlock:
    return InputBlock(block_id=block, label=label, hint=hint, optional=optional,
                      element=FileInputElement(action_id=ActionId.FILE, filetypes=FILE_TYPES, max_files=1))


def _percent_block(block: BlockId, label: str, value: float) -> InputBlock:
    return InputBlock(block_id=block, label=label, element=NumberInputElement(
        action_id=ActionId.SPLIT, is_decimal_allowed=True, initial_value=f"{value:g}", min_value="0",
        max_value="90"))


def _dataset_block(block: BlockId, label: str) -> InputBlock:
    """Registered datasets in a searchable select (options come from `block_suggestion`)."""
    return InputBlock(block_id=block, label=label, optional=True,
                      hint="Registered with `fmbot data register` or a form's Register as dataset button.",
                      element=ExternalDataSelectElement(action_id=ActionId.DATASET, min_query_length=0,
                                                        placeholder="Search registered datasets"))


def data_step(state: FormState, models: list[ModelCard], metadata: str) -> dict:
    """Step 1: model, task and data."""
    kind = state.kind
    models_shown = models[:SELECT_OPTIONS]
    model_options = [option(card.ref) for card in models_shown]
    chosen = next((o for o in model_options if state.model and o.value.split(":")[0] == state.model.split(":")[0]),
                  None)
    tasks = [t for t, spec in TASKS.items() if (spec.finetune if kind == "finetune" else spec.evaluate)]
    task_options = [option(t.value) for t in tasks]
    current_task = state.task or Task.TEXT_CLASSIFICATION
    model_block = InputBlock(block_id=BlockId.MODEL, label="Model", element=StaticSelectElement(
        action_id=ActionId.MODEL, options=model_options, initial_option=chosen, placeholder="Choose a model"))
    if kind == "compare":
        model_block = SectionBlock(block_id=BlockId.COMPARE_MODELS, text=MarkdownTextObject(text=clip(
            "*Models to compare*: " + ", ".join(f"`{escape(m)}`" for m in state.models)
            + "\nEach is evaluated on the same test rows; a model that cannot do the task is left out.", 3000)))
    blocks: list[Any] = [
        model_block,
        InputBlock(block_id=BlockId.TASK, label="Task", element=StaticSelectElement(
            action_id=ActionId.TASK, options=task_options,
            initial_option=next(o for o in task_options if o.value == current_task))),
    ]
    if len(models) > SELECT_OPTIONS:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"and {len(models) - SELECT_OPTIONS} more models: narrow with `/fm search` and use its buttons")]))
    source_hint = "Or: a link to a file already shared in the channel, or a data asset azureml:<name>:<version>."
    if kind == "finetune":
        blocks += [
            _file_block(BlockId.TRAIN_FILE, "Training data", "JSONL, JSON, CSV or TSV, up to 100 MB.", optional=True),
            _dataset_block(BlockId.TRAIN_DATASET, "…or a registered dataset"),
            InputBlock(block_id=BlockId.TRAIN_SOURCE, label="…or training data from", optional=True, hint=source_hint,
                       element=PlainTextInputElement(action_id=ActionId.SOURCE,
                                                     placeholder="https://…/files/U…/F…/train.csv")),
            _file_block(BlockId.VALIDATION_FILE, "Validation data (optional)",
                        "Leave empty to split it off the training data.", optional=True),
            _percent_block(BlockId.VALIDATION_SPLIT, "Validation split, % of training data", state.validation_split),
            _file_block(BlockId.TEST_FILE, "Test data (optional)", "Leave empty to split it off the training data.",
                        optional=True),
            _percent_block(BlockId.TEST_SPLIT, "Test split, % of training data", state.test_split),
        ]
    else:
        blocks += [
            _file_block(BlockId.TEST_FILE, "Test data", "JSONL, JSON, CSV or TSV, up to 100 MB.", optional=True),
            _dataset_block(BlockId.TEST_DATASET, "…or a registered dataset"),
            InputBlock(block_id=BlockId.TEST_SOURCE, label="…or test data from", optional=True, hint=source_hint,
                       element=PlainTextInputElement(action_id=ActionId.SOURCE)),
        ]
    return _modal(CallbackId.FORM_DATA, state, metadata, blocks, submit="Next")


def checking_step(state: FormState, metadata: str, what: str) -> dict:
    """Shown at once while slow work (downloads, reading columns) runs after the ack."""
    text = f":hourglass_flowing_sand: Checking {what}… this view updates in a moment."
    return _modal(CallbackId.FORM_CHECKING, state, metadata, [SectionBlock(text=MarkdownTextObject(text=text))],
                  submit=None)


def mapping_step(state: FormState, metadata: str, guesses: dict[str, str]) -> dict:
    """Step 2: one select per column key, filled with the file's own columns."""
    spec = TASKS[Task(state.task)]
    columns = state.columns[: SELECT_OPTIONS - 1]
    data_name = (state.train or state.test).name if (state.train or state.test) else "your data"
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(
        text=f"Which column of *{escape(data_name)}* holds each part of a {state.task} example?"))]
    for key in spec.keys:
        required = key in spec.required_keys
        options = [option(column) for column in columns]
        if not required:
            options = [option("(not used)", NONE_VALUE)] + options
        guess = guesses.get(key)
        initial = next((o for o in options if o.value == guess), None if required else options[0])
        blocks.append(InputBlock(
            block_id=f"{BlockId.MAPPING}:{key}", label=key + ("" if required else " (optional)"),
            element=StaticSelectElement(action_id=ActionId.COLUMN, options=options, initial_option=initial,
                                        placeholder="Choose a column")))
    if len(state.columns) > len(columns):
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"and {len(state.columns) - len(columns)} more columns not shown")]))
    if spec.alternatives:
        groups = " or ".join(" + ".join(group) for group in spec.alternatives)
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Map {groups}.")]))
    blocks += data_blocks(state)
    return _modal(CallbackId.FORM_MAPPING, state, metadata, blocks, submit="Next")


def data_blocks(state: FormState) -> list[Any]:
    """The preview of the mapped data, and its buttons: skip the bad rows found, register an upload."""
    blocks: list[Any] = []
    if state.preview:
        blocks.append(SectionBlock(block_id=BlockId.PREVIEW, text=MarkdownTextObject(text=clip(state.preview, 3000))))
    buttons = []
    if state.bad_rows and not state.skip_bad_rows:
        rows = f"{state.bad_rows} row{'s' if state.bad_rows != 1 else ''}"
        buttons.append(ButtonElement(text=f"Skip {rows} and continue", action_id=ActionId.SKIP_BAD_ROWS,
                                     value=str(state.bad_rows), style="primary"))
    primary = state.train or state.test
    if primary is not None and primary.dataset is None and not primary.path.startswith("azureml:"):
        buttons.append(ButtonElement(text="Register as dataset", action_id=ActionId.REGISTER_DATASET,
                                     value="register"))
    if buttons:
        blocks.append(ActionsBlock(block_id=BlockId.BAD_ROWS, elements=buttons))
    return blocks


def compute_step(state: FormState, metadata: str, estimates: list[tuple[str, Estimate]] | None = None) -> dict:
    """Step 3: compute (options load with free quota) and settings, with what each compute choice would
    take and cost at the default settings, before Start."""
    blocks: list[Any] = [
        InputBlock(block_id=BlockId.COMPUTE, label="Compute", hint="Options show the quota that is free now.",
                   element=ExternalDataSelectElement(action_id=ActionId.COMPUTE, min_query_length=0,
                                                     placeholder="Choose compute")),
        InputBlock(block_id=BlockId.INSTANCES, label="Instances", element=NumberInputElement(
            action_id=ActionId.NUMBER, is_decimal_allowed=False, initial_value="1", min_value="1", max_value="16")),
    ]
    if state.kind == "finetune":
        blocks += [
            InputBlock(block_id=BlockId.EPOCHS, label="Epochs", element=NumberInputElement(
                action_id=ActionId.NUMBER, is_decimal_allowed=False, initial_value="3", min_value="1",
                max_value="100")),
            InputBlock(block_id=BlockId.LEARNING_RATE, label="Learning rate", element=NumberInputElement(
                action_id=ActionId.NUMBER, is_decimal_allowed=True, initial_value="0.00005")),
        ]
    blocks.append(InputBlock(block_id=BlockId.BATCH_SIZE, label="Batch size", element=NumberInputElement(
        action_id=ActionId.NUMBER, is_decimal_allowed=False, initial_value="16", min_value="1", max_value="1024")))
    mapping = ", ".join(f"{k}={v}" for k, v in state.mapping.items())
    models = state.model or " vs ".join(state.models)
    left_out = "".join(f" · left out `{escape(m)}`: {escape(why)}" for m, why in state.left_out.items())
    skipped = f" · {state.bad_rows} bad rows skipped" if state.skip_bad_rows and state.bad_rows else ""
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=clip(f"`{models}` · {state.task} · mapping {mapping}{skipped}{left_out}", 3000))]))
    if state.preview:
        blocks.append(SectionBlock(block_id=BlockId.PREVIEW, text=MarkdownTextObject(text=clip(state.preview, 3000))))
    if estimates:
        blocks.append(estimates_block(estimates, state.rows, epochs=3 if state.kind == "finetune" else None))
    return _modal(CallbackId.FORM_COMPUTE, state, metadata, blocks, submit="Start")


def estimates_block(estimates: list[tuple[str, Estimate]], rows: int = 0, *, epochs: int | None = None) -> SectionBlock:
    """`Estimate (1,000 rows × 3 epochs): • cpu: ≈ 1–3 min …`, one line per compute choice."""
    settings = f" ({rows:,} rows" + (f" × {epochs} epochs" if epochs else "") + ", 1 instance)" if rows else ""
    lines = [f":moneybag: *Estimate*{settings}:"] + [f"• `{name}`: {e.summary()}" for name, e in estimates]
    lines.append(f"_{estimates[0][1].basis}_")
    return SectionBlock(block_id=BlockId.ESTIMATE, text=MarkdownTextObject(text=clip("\n".join(lines), 3000)))


def form_again(view: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """A submitted form put back by `views.update` once a check that outlived the ack refused it:
    `views.update` has no inline errors, so each problem is a note right under the block it is
    about, and every input starts from what the user had chosen (the "checking…" view between
    them dropped Slack's own copy of their input)."""
    values = (view.get("state") or {}).get("values") or {}
    blocks: list[dict[str, Any]] = []
    for block in view.get("blocks", []):
        if str(block.get("block_id", "")).startswith(f"{BlockId.FORM_ERROR}:"):
            continue
        if block.get("type") == "input":
            chosen = next(iter((values.get(block.get("block_id")) or {}).values()), None)
            block = {**block, "element": _with_initial(block["element"], chosen)} if chosen else block
        blocks.append(block)
        if block.get("block_id") in errors:
            blocks.append(ContextBlock(block_id=f"{BlockId.FORM_ERROR}:{block['block_id']}", elements=[
                MarkdownTextObject(text=clip(f":warning: {errors[block['block_id']]}", 3000))]).to_dict())
    return {**{k: view[k] for k in _VIEW_FIELDS if k in view}, "blocks": blocks}


def _with_initial(element: dict[str, Any], chosen: dict[str, Any]) -> dict[str, Any]:
    element = {k: v for k, v in element.items() if not k.startswith("initial_")}
    if chosen.get("value") not in (None, ""):
        element["initial_value"] = chosen["value"]
    elif chosen.get("selected_option"):
        picked = chosen["selected_option"]
        element["initial_option"] = {"text": {"type": "plain_text", "text": picked["value"]}, **picked}
    elif chosen.get("selected_options"):
        element["initial_options"] = chosen["selected_options"]
    return element


def submitted_view(view: dict[str, Any], text: str) -> dict[str, Any]:
    """What a form that was answered "checking…" shows once its job is submitted: the modal cannot
    be closed from here, so it says where the job is followed and offers only Close."""
    return View(type="modal", callback_id=CallbackId.FORM_CHECKING, title=view["title"]["text"], close="Close",
                private_metadata=view.get("private_metadata"),
                blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))]).to_dict()


def read_values(view: dict[str, Any]) -> dict[str, Any]:
    """Flatten `view.state.values` into {block_id: value}, whatever the element type."""
    flat: dict[str, Any] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for element in actions.values():
            kind = element.get("type")
            if kind in ("static_select", "external_select", "radio_buttons"):
                selected = element.get("selected_option")
                flat[block_id] = selected["value"] if selected else None
            elif kind == "checkboxes":
                flat[block_id] = [option["value"] for option in element.get("selected_options") or []]
            elif kind == "file_input":
                flat[block_id] = element.get("files") or []
            else:
                flat[block_id] = element.get("value")
    return flat

"""The fine-tune form, and reading its submitted values back into plain data."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from slack_sdk.models.blocks.block_elements import FileInputElement
from slack_sdk.models.blocks import (
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.slack.ids import ActionId, BlockId, CallbackId
from platforms.base import ModelCard
from platforms.tasks import TASKS, Task

MAX_OPTIONS = 100


class FormContext(BaseModel):
    """What the form must remember between opening and submit (sent as `private_metadata`)."""

    channel: str
    user: str


class FinetuneForm(BaseModel):
    model: str | None = None
    task: str | None = None
    files: list[dict[str, Any]] = []
    mapping: str = ""
    validation_split: float = 10
    test_split: float = 10
    epochs: int = 3


def _option(text: str, value: str) -> Option:
    return Option(text=text[:75], value=value[:150])


def finetune_modal(models: list[ModelCard], context: FormContext, model: str | None = None) -> dict[str, Any]:
    options = [_option(card.ref, card.ref) for card in models[:MAX_OPTIONS]]
    initial = next((o for o in options if model and o.value.split(":")[0] == model.split(":")[0]), None)
    tasks = [_option(task.value, task.value) for task, spec in TASKS.items() if spec.finetune]
    view = View(
        type="modal",
        callback_id=CallbackId.FINETUNE,
        title="Fine-tune a model",
        submit="Start",
        close="Cancel",
        private_metadata=context.model_dump_json(),
        blocks=[
            InputBlock(
                block_id=BlockId.MODEL,
                label="Model",
                element=StaticSelectElement(action_id=ActionId.MODEL, options=options, initial_option=initial,
                                            placeholder="Choose a model"),
            ),
            InputBlock(
                block_id=BlockId.TASK,
                label="Task",
                element=StaticSelectElement(action_id=ActionId.TASK, options=tasks,
                                            initial_option=_option(Task.TEXT_CLASSIFICATION, Task.TEXT_CLASSIFICATION)),
            ),
            InputBlock(
                block_id=BlockId.TRAIN_FILE,
                label="Training data",
                hint="JSONL, JSON, CSV or TSV with a header; up to 100 MB.",
                element=FileInputElement(action_id=ActionId.TRAIN_FILE, filetypes=["jsonl", "json", "csv", "tsv"],
                                         max_files=1),
            ),
            InputBlock(
                block_id=BlockId.MAPPING,
                label="Column mapping",
                optional=True,
                hint="KEY=COLUMN pairs, e.g. sentence1=review,label=stars. Leave empty to guess from the file.",
                element=PlainTextInputElement(action_id=ActionId.MAPPING, placeholder="sentence1=text,label=label"),
            ),
            InputBlock(
                block_id=BlockId.VALIDATION_SPLIT,
                label="Validation split (% of the training data)",
                element=NumberInputElement(action_id=ActionId.VALIDATION_SPLIT, is_decimal_allowed=True,
                                           initial_value="10", min_value="0", max_value="90"),
            ),
            InputBlock(
                block_id=BlockId.TEST_SPLIT,
                label="Test split (% of the training data)",
                element=NumberInputElement(action_id=ActionId.TEST_SPLIT, is_decimal_allowed=True,
                                           initial_value="10", min_value="1", max_value="90"),
            ),
            InputBlock(
                block_id=BlockId.EPOCHS,
                label="Epochs",
                element=NumberInputElement(action_id=ActionId.EPOCHS, is_decimal_allowed=False, initial_value="3",
                                           min_value="1", max_value="100"),
            ),
        ],
    )
    return view.to_dict()


def read_state(view: dict[str, Any]) -> dict[str, Any]:
    """Flatten `view.state.values` into {block_id: value}, whatever the element type."""
    flat: dict[str, Any] = {}
    for block_id, actions in view.get("state", {}).get("values", {}).items():
        for element in actions.values():
            kind = element.get("type")
            if kind in ("static_select", "external_select"):
                selected = element.get("selected_option")
                flat[block_id] = selected["value"] if selected else None
            elif kind == "file_input":
                flat[block_id] = element.get("files") or []
            else:
                flat[block_id] = element.get("value")
    return flat


def read_finetune_form(view: dict[str, Any]) -> FinetuneForm:
    values = read_state(view)
    return FinetuneForm(
        model=values.get(BlockId.MODEL),
        task=values.get(BlockId.TASK),
        files=values.get(BlockId.TRAIN_FILE) or [],
        mapping=values.get(BlockId.MAPPING) or "",
        validation_split=float(values.get(BlockId.VALIDATION_SPLIT) or 0),
        test_split=float(values.get(BlockId.TEST_SPLIT) or 0),
        epochs=int(float(values.get(BlockId.EPOCHS) or 3)),
    )

"""What every local fine-tune shares: the device, the Trainer's settings, and progress reporting.

Each task module builds its model, tokenized examples and collator, then calls `train`, so the
choices that matter for speed and correctness (dynamic padding, the fused optimizer, TF32 and, for
steps big enough to gain from it, bf16 on CUDA, no checkpoints written mid-run, progress and
cancellation between steps) live in one place.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, Progress, ProgressReport


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_count() -> int:
    """The GPUs jobs here would train on, without importing torch where it is not loaded yet (the
    bot prices every submission with it, in Slack's 3 seconds, and torch takes 5 s to import):
    NVIDIA's driver lists each GPU under /proc, narrowed by CUDA_VISIBLE_DEVICES as torch would."""
    if "torch" in sys.modules:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = Path("/proc/driver/nvidia/gpus")
    found = len(list(listed.iterdir())) if listed.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = min(found, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    return found


def on_device(model: Any) -> Any:
    """The model in eval mode on the device. Predictors call this per request, and moving a model
    that is already there still walks every parameter (0.7 ms for MiniLM-L6, a tenth of a
    one-row prediction on CPU), so it moves only when it has to."""
    if model.training or model.device.type != device():
        model.eval().to(device())
    return model


SAMPLE_COUNT = 5
# Rows an evaluation keeps for comparisons (bootstrap intervals, disagreements, flips): enough for
# intervals to mean something, small enough that a job record stays well under a megabyte.
ROW_LIMIT = 500
ROW_INPUT_CHARS = 200
ROW_VALUE_CHARS = 400


def _clipped(value: Any, limit: int) -> Any:
    return value[:limit] if isinstance(value, str) else value


@dataclass
class TaskResult:
    """Task modules hand over every row they scored (up to ROW_LIMIT, `task_contract.sample_rows`):
    the first SAMPLE_COUNT are the samples a job card shows, as they are; all of them, texts clipped,
    the rows a comparison reads its confidence intervals, disagreements and flips from."""

    metrics: dict[str, float]
    samples: list[dict[str, Any]] = field(default_factory=list)
    loss_history: list[tuple[int, float]] = field(default_factory=list)
    message: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    parameters: int | None = None

    def __post_init__(self) -> None:
        rows = self.rows or self.samples
        self.samples = rows[:SAMPLE_COUNT]
        self.rows = [{"input": _clipped(r["input"], ROW_INPUT_CHARS),
                      "reference": _clipped(r["reference"], ROW_VALUE_CHARS),
                      "prediction": _clipped(r["prediction"], ROW_VALUE_CHARS)} for r in rows]


BF16_MIN_TOKENS_PER_STEP = 4096


def wants_bf16(train_dataset: Sequence[dict[str, Any]], batch_size: int) -> bool:
    """bf16 autocast only when a step holds enough tokens for its matrix products to outweigh the
    casts it adds; with TF32 on, fp32 products already run on tensor cores. Measured on an H200,
    batch 16, bf16 against fp32+TF32: MiniLM-L6 on ~15-token reviews 0.6-0.75x; BERT-base at 512
    and 2,048 tokens a step 0.55x and 0.52x, at 8,192 tokens a step 1.13x."""
    lengths = [len(example["input_ids"]) for example in train_dataset if "input_ids" in example]
    return bool(lengths) and sum(lengths) / len(lengths) * batch_size >= BF16_MIN_TOKENS_PER_STEP


def _has_input_ids(train_dataset: Sequence[dict[str, Any]]) -> bool:
    """Whether the Trainer can group by length: it reads each example's `input_ids`."""
    return len(train_dataset) > 0 and isinstance(train_dataset[0], dict) and "input_ids" in train_dataset[0]


def make_report_callback(report: ProgressReport):
    from transformers import TrainerCallback

    class ReportCallback(TrainerCallback):
        """Turns Trainer events into Progress; a JobCanceled raised by `report` stops training. A loss
        that is not finite (a diverged step) is left out of the curve, which is where the Trainer's
        `logging_nan_inf_filter` would have hidden it, without that filter's per-step device sync."""

        def __init__(self) -> None:
            self.losses: list[tuple[int, float]] = []
            self.last_loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and math.isfinite(logs["loss"]):
                self.last_loss = float(logs["loss"])
                self.losses.append((state.global_step, self.last_loss))

        def on_train_begin(self, args, state, control, **kwargs):
            report(Progress(step=0, total=state.max_steps, loss=None, epoch=0.0))

        def on_step_end(self, args, state, control, **kwargs):
            report(Progress(step=state.global_step, total=state.max_steps, loss=self.last_loss, epoch=state.epoch))

    return ReportCallback()


def train(model: Any, processing_class: Any, train_dataset: Sequence[dict[str, Any]], collator: Any,
          hyper: Hyperparameters, report: ProgressReport, *, trainer_class: Any = None,
          extra_args: dict[str, Any] | None = None) -> list[tuple[int, float]]:
    """Run the transformers Trainer with fmbot's settings and return the (step, loss) history."""
    import torch
    from transformers import PrinterCallback, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    cuda = device() == "cuda"
    steps_per_epoch = max(1, -(-len(train_dataset) // hyper.batch_size))
    total_steps = steps_per_epoch * hyper.epochs
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    callback = make_report_callback(report)
    with tempfile.TemporaryDirectory(prefix="fmbot-train-") as scratch:
        args = TrainingArguments(
            output_dir=scratch,
            num_train_epochs=hyper.epochs,
            learning_rate=hyper.learning_rate,
            per_device_train_batch_size=hyper.batch_size,
            logging_steps=max(1, total_steps // 25),
            logging_first_step=True,
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            seed=hyper.seed,
            use_cpu=not cuda,
            bf16=cuda and torch.cuda.is_bf16_supported() and wants_bf16(train_dataset, hyper.batch_size),
            optim="adamw_torch_fused",
            dataloader_pin_memory=cuda,
            disable_tqdm=True,
            remove_unused_columns=False,
            # The filter reads every step's loss back to the host (`torch.isnan(loss) or ...` is a Python
            # bool), so on CUDA the CPU waits for each step to finish before queueing the next one: the
            # plain loop never waits. ReportCallback drops a non-finite loss from the curve instead.
            logging_nan_inf_filter=False,
            # Batches of similar lengths pad less: on SST-2 sentences (3 to 50 words) a random batch pads
            # to its longest. The examples are shuffled, cut into megabatches (up to 50 batches, at least
            # four megabatches an epoch) and sorted by length within each.
            train_sampling_strategy="group_by_length" if _has_input_ids(train_dataset) else "random",
            **(extra_args or {}),
        )
        trainer = (trainer_class or Trainer)(
            model=model,
            args=args,
            train_dataset=train_dataset,
            data_collator=collator,
            processing_class=processing_class,
            callbacks=[callback],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    report(Progress(step=total_steps, total=total_steps, loss=callback.last_loss, phase="evaluating"))
    return callback.losses


def batches(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def token_limit(model: Any, max_length: int) -> int:
    """`max_length`, lowered to what the model's position embeddings reach (a 128-position BERT
    asked for 256 tokens would fail with an index error, not a message)."""
    return min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)

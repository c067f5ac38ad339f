"""LoRA for the generative tasks: train small adapter matrices, then merge them into the weights.

Merging before saving keeps a fine-tuned model a plain Hugging Face folder, so evaluation, try and
deploy load it exactly like any other catalog model (no peft needed to read it back).
"""

from __future__ import annotations

from typing import Any

RANK = 8
ALPHA = 16
DROPOUT = 0.05


def with_lora(model: Any, task_type: str) -> Any:
    """`model` with LoRA adapters on every linear layer; `task_type` is "CAUSAL_LM" or "SEQ_2_SEQ_LM"."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType[task_type], r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT,
                        target_modules="all-linear")
    return get_peft_model(model, config)


def merged(model: Any) -> Any:
    """The plain model with trained adapters folded in (a model without adapters is returned as is)."""
    from peft import PeftModel

    return model.merge_and_unload() if isinstance(model, PeftModel) else model

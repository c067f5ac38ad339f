"""What summarization and translation share: an encoder-decoder model read and trained directly.

transformers 5 removed the summarization, translation and text2text pipelines, so text is produced
with `model.generate`. T5-style models expect a task prefix ("summarize: ", "translate English to
Romanian: "); the prefix a model was fine-tuned with is written into its config's
`task_specific_params` (where T5 checkpoints keep theirs), so evaluation and serving reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from platforms.base import Hyperparameters, ProgressReport
from platforms.local.lora import merged, with_lora
from platforms.local.training import batches, on_device, train

PREFIXED_MODEL_TYPES = ("t5",)
# Generated text is capped here even when inputs may be longer, to keep try and evaluate quick.
MAX_NEW_TOKENS = 128


def load_seq2seq(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoModelForSeq2SeqLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


def task_prefix(config: Any, key: str, t5_default: str) -> str:
    """The model's own prefix for `key`, else `t5_default` for T5-style models, else none."""
    params = getattr(config, "task_specific_params", None) or {}
    if "prefix" in params.get(key, {}):
        return params[key]["prefix"]
    return t5_default if config.model_type in PREFIXED_MODEL_TYPES else ""


def generate_texts(model: Any, tokenizer: Any, texts: list[str], *, max_length: int = 256,
                   batch_size: int = 32) -> list[str]:
    """Greedy decoding of each text (inputs truncated to `max_length` tokens)."""
    import torch

    on_device(model)
    outputs = []
    for batch in batches(texts, batch_size):
        encoded = tokenizer(batch, truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt").to(model.device)
        with torch.inference_mode():
            generated = model.generate(**encoded, max_new_tokens=min(max_length, MAX_NEW_TOKENS), num_beams=1,
                                       do_sample=False)
        outputs.extend(text.strip() for text in tokenizer.batch_decode(generated, skip_special_tokens=True))
    return outputs


def finetune_seq2seq(model_dir: Path, sources: list[str], targets: list[str], hyper: Hyperparameters,
                     report: ProgressReport, out_dir: Path, *, prefixes: dict[str, str]) -> tuple[Any, Any, list]:
    """Train on (source, target) pairs, save the model with `prefixes` recorded, and return it.

    `sources` already carry their prefix; `prefixes` maps task_specific_params keys to that prefix.
    """
    from transformers import DataCollatorForSeq2Seq

    model, tokenizer = load_seq2seq(model_dir)
    base = model
    if hyper.lora:
        model = with_lora(model, "SEQ_2_SEQ_LM")
    encoded = tokenizer(sources, text_target=targets, truncation=True, max_length=hyper.max_length)
    dataset = [{key: encoded[key][i] for key in ("input_ids", "attention_mask", "labels")} for i in range(len(sources))]
    losses = train(model, tokenizer, dataset, DataCollatorForSeq2Seq(tokenizer, model=base), hyper, report)
    model = merged(model)
    params = dict(getattr(model.config, "task_specific_params", None) or {})
    for key, prefix in prefixes.items():
        params[key] = {**params.get(key, {}), "prefix": prefix}
    model.config.task_specific_params = params
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return model, tokenizer, losses

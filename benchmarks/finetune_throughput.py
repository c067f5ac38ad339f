"""finetune_throughput: local fine-tune samples/s, MiniLM-L6, 2,000 rows, 1 epoch, fmbot vs plain Trainer.

fmbot's run is the worker's: `LocalPlatform.run_finetune` on a JSONL file (read, validated, model
and head loaded, tokenized, trained with `platforms.local.training.train`, saved, scored on the test
file). The baseline is the script a practitioner would write with the same settings (model,
tokenizer, batch size, max length, learning rate, epochs, seed): `Trainer` with its defaults and a
`DataCollatorWithPadding`, then `save_pretrained` and a prediction over the same test rows. Both run
in this process, alternating, on the same device.

Two figures: the training loop alone (steps 2..N, timed at each step's end, so model loading and
the first step's warm-up are out) and the whole job end to end.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Result, log, main, median

NAME = "finetune_throughput"
MAPPING = {"sentence1": "review", "label": "sentiment"}


def write_rows(source: Path, target: Path, count: int) -> None:
    """`count` rows cycled from the demo's labelled reviews (real sentences, both classes)."""
    rows = [line for line in source.read_text().splitlines() if line.strip()]
    target.write_text("\n".join(rows[i % len(rows)] for i in range(count)) + "\n")


class StepClock:
    """Times between the first and the last training step."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.steps = 0

    def step(self, step: int) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last, self.steps = now, step

    def samples_per_s(self, rows: int, batch_size: int) -> float:
        timed_samples = min(rows, self.steps * batch_size) - batch_size
        return timed_samples / (self.last - self.first)


def run_fmbot(models_dir: Path, train: Path, test: Path, hyper: Any, rows: int) -> tuple[float, float]:
    from platforms.base import DataRef, FinetuneSpec, Progress
    from platforms.datasets import SplitPlan
    from platforms.local import LocalPlatform
    from platforms.local.catalog import SEED_NAME
    from platforms.tasks import Task

    clock = StepClock()

    def report(progress: Progress) -> None:
        if progress.phase == "training" and progress.step > 0:
            clock.step(progress.step)

    started = time.perf_counter()
    LocalPlatform(models_dir).run_finetune(FinetuneSpec(
        model=SEED_NAME, task=Task.TEXT_CLASSIFICATION, train=DataRef(path=str(train), name=train.name),
        test=DataRef(path=str(test), name=test.name), split=SplitPlan(validation=0, test=0), mapping=MAPPING,
        hyperparameters=hyper, output_name="bench-ft",
    ), report)
    return clock.samples_per_s(rows, hyper.batch_size), rows / (time.perf_counter() - started)


def run_baseline(model_dir: Path, train: Path, test: Path, hyper: Any, rows: int, out_dir: Path) -> tuple[float, float]:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            clock.step(state.global_step)

    started = time.perf_counter()
    records = [json.loads(line) for line in train.read_text().splitlines() if line.strip()]
    labels = sorted({r["sentiment"] for r in records})
    label2id = {name: i for i, name in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id)
    encoded = tokenizer([r["review"] for r in records], truncation=True, max_length=hyper.max_length)
    dataset = [{**{k: encoded[k][i] for k in encoded}, "labels": label2id[r["sentiment"]]}
               for i, r in enumerate(records)]
    with tempfile.TemporaryDirectory(prefix="fmbot-bench-trainer-") as scratch:
        args = TrainingArguments(
            output_dir=scratch, num_train_epochs=hyper.epochs, learning_rate=hyper.learning_rate,
            per_device_train_batch_size=hyper.batch_size, seed=hyper.seed, save_strategy="no", report_to="none",
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer),
                processing_class=tokenizer, callbacks=[Clock()]).train()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    test_rows = [json.loads(line) for line in test.read_text().splitlines() if line.strip()]
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(test_rows), hyper.batch_size * 2):
            batch = tokenizer([r["review"] for r in test_rows[start:start + hyper.batch_size * 2]], truncation=True,
                              max_length=hyper.max_length, padding=True, return_tensors="pt").to(model.device)
            model(**batch).logits.argmax(-1)
    return clock.samples_per_s(rows, hyper.batch_size), rows / (time.perf_counter() - started)


def run(quick: bool) -> list[Result]:
    from bot.demo import DATA
    from platforms.base import Hyperparameters
    from platforms.local.catalog import LocalCatalog
    from platforms.local.training import device

    rows = 32 if quick else 2000  # quick: four steps, enough for steps 2..N to time
    rounds = 1 if quick else 3
    hyper = Hyperparameters(epochs=1, learning_rate=5e-5, batch_size=8 if quick else 16, max_length=32 if quick else 128,
                            seed=42)
    loop: dict[str, list[float]] = {"fmbot": [], "Trainer": []}
    whole: dict[str, list[float]] = {"fmbot": [], "Trainer": []}
    with tempfile.TemporaryDirectory(prefix="fmbot-bench-ft-") as folder:
        root = Path(folder)
        train, test = root / "train.jsonl", root / "test.jsonl"
        write_rows(DATA / "train.jsonl", train, rows)
        write_rows(DATA / "test.jsonl", test, 8 if quick else 80)
        catalog = LocalCatalog(root / "models")
        catalog.root.mkdir(parents=True)
        catalog.ensure_seeded()
        model_dir = catalog.path(catalog.list()[0].ref)
        if device() == "cuda":
            log(f"{NAME}: one untimed run of each first (CUDA context, cuBLAS handles, kernel selection)")
            run_fmbot(root / "models", train, test, hyper, rows)
            run_baseline(model_dir, train, test, hyper, rows, root / "trainer-warm-up")
        for round_ in range(rounds):
            for who in ("fmbot", "Trainer") if round_ % 2 == 0 else ("Trainer", "fmbot"):
                if who == "fmbot":
                    in_loop, overall = run_fmbot(root / "models", train, test, hyper, rows)
                else:
                    in_loop, overall = run_baseline(model_dir, train, test, hyper, rows, root / f"trainer-{round_}")
                loop[who].append(in_loop)
                whole[who].append(overall)
                log(f"{NAME} round {round_ + 1} {who}: loop {in_loop:.1f} samples/s, end to end {overall:.1f} samples/s")
    where = device()
    return [
        Result(benchmark=NAME, metric=f"training loop, {rows} rows, 1 epoch ({where})", unit="samples/s",
               fmbot=median(loop["fmbot"]), baseline=median(loop["Trainer"]), baseline_name="plain Trainer",
               higher_is_better=True, target=0.95),
        Result(benchmark=NAME, metric=f"whole job end to end, {rows} rows ({where})", unit="samples/s",
               fmbot=median(whole["fmbot"]), baseline=median(whole["Trainer"]), baseline_name="plain Trainer script",
               higher_is_better=True, target=0.95, note="load, tokenize, train, save, score test"),
    ]


if __name__ == "__main__":
    raise SystemExit(main(NAME, run))

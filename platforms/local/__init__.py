"""The local platform: models in a folder, trained, evaluated and served on this machine.

Work runs to completion inside the calling RQ worker (CPU, or CUDA when present); the catalog
is a folder of Hugging Face-format models (see `catalog.py`).
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from platforms.base import (
    DataRef,
    EvaluateSpec,
    FinetuneSpec,
    JobOutcome,
    JobState,
    ModelCard,
    Platform,
    PlatformError,
    ProgressReport,
)
from platforms.datasets import ColumnMapping, check_labels, load_examples, split_examples
from platforms.local import text_classification
from platforms.local.catalog import LocalCatalog
from platforms.tasks import TASKS, Task

TASK_MODULES: dict[Task, ModuleType] = {
    Task.TEXT_CLASSIFICATION: text_classification,
}


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, models_dir: Path, *, max_upload_bytes: int = 100 * 1024 * 1024, seed: bool = True):
        self.catalog = LocalCatalog(Path(models_dir))
        self.max_upload_bytes = max_upload_bytes
        self.catalog.root.mkdir(parents=True, exist_ok=True)
        if seed:
            self.catalog.ensure_seeded()

    # ------------------------------------------------------------------ catalog

    def list_models(self, task: Task | None = None) -> list[ModelCard]:
        return self.catalog.list(task)

    def get_model(self, ref: str) -> ModelCard:
        return self.catalog.get(ref)

    # ------------------------------------------------------------------ work

    def _module(self, task: Task, card: ModelCard, action: str) -> ModuleType:
        module = TASK_MODULES.get(task)
        if module is None:
            supported = ", ".join(t.value for t in TASK_MODULES)
            raise PlatformError(f"the local platform cannot {action} {task} yet", hint=f"Supported: {supported}")
        if task not in card.tasks:
            raise PlatformError(
                f"{card.ref} does not support {task}",
                hint=f"Its tasks: {', '.join(card.tasks)}. Pick a model for {task} with `search task:{task}`",
            )
        return module

    def _load(self, ref: DataRef, mapping: ColumnMapping) -> list[dict[str, Any]]:
        return load_examples(Path(ref.path), mapping, ref.name, max_bytes=self.max_upload_bytes)

    def run_finetune(self, spec: FinetuneSpec, report: ProgressReport) -> JobOutcome:
        card = self.catalog.get(spec.model)
        module = self._module(spec.task, card, "fine-tune")
        mapping = ColumnMapping.build(spec.mapping, spec.task)
        spec.split.check()
        train = self._load(spec.train, mapping)
        stratify = "label" if spec.task == Task.TEXT_CLASSIFICATION else None
        if stratify:
            check_labels(train, spec.train.name)
        fractions = [f for f, own in ((spec.split.validation, spec.validation), (spec.split.test, spec.test)) if own is None]
        train, *held_out = split_examples(train, fractions, seed=spec.hyperparameters.seed, stratify_key=stratify)
        test = self._load(spec.test, mapping) if spec.test else held_out[-1]
        if not test:
            raise PlatformError(
                f"{spec.train.name} has too few rows to set a test split aside",
                hint="Add rows, raise the test split, or give a test file",
            )
        output_name = spec.output_name or f"{card.name}-ft"
        version, out_dir = self.catalog.new_version_dir(output_name)
        try:
            result = module.finetune(self.catalog.path(card.ref), train, test, spec.hyperparameters, report, out_dir)
            output = self.catalog.register(out_dir, ModelCard(
                name=output_name,
                version=version,
                tasks=[spec.task],
                license=card.license,
                description=f"{card.name} fine-tuned for {spec.task} on {spec.train.name}.",
                source="fine-tune",
                base_model=card.ref,
                training_data=spec.train.name,
                metrics=result.metrics,
                inference_compute=card.inference_compute,
                finetune_compute=card.finetune_compute,
                evaluation_compute=card.evaluation_compute,
                created_at=datetime.now(UTC),
            ))
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        return JobOutcome(
            state=JobState.COMPLETED,
            metrics=result.metrics,
            output_model=output.ref,
            loss_history=result.loss_history,
            samples=result.samples,
        )

    def run_evaluation(self, spec: EvaluateSpec, report: ProgressReport) -> JobOutcome:
        card = self.catalog.get(spec.model)
        module = self._module(spec.task, card, "evaluate")
        mapping = ColumnMapping.build(spec.mapping, spec.task)
        examples = self._load(spec.test, mapping)
        result = module.evaluate(self.catalog.path(card.ref), examples, max_length=spec.max_length,
                                 batch_size=spec.batch_size)
        return JobOutcome(state=JobState.COMPLETED, metrics=result.metrics, samples=result.samples,
                          message=result.message)

    def job_status(self, external_id: str) -> JobOutcome:
        raise PlatformError("local jobs run inside the worker and have no remote status")

    def cancel(self, external_id: str) -> None:
        """Local jobs stop at their next step when the ledger says canceled; nothing remote to cancel."""


__all__ = ["LocalPlatform", "TASKS"]

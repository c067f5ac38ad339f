"""The local platform: models in a folder, trained, evaluated and served on this machine.

Work runs to completion inside the calling RQ worker (CPU, or CUDA when present); the catalog
is a folder of Hugging Face-format models (see `catalog.py`).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from redis import Redis

from platforms.base import (
    ComputeOption,
    EndpointActivity,
    DataRef,
    DeploySpec,
    EndpointInfo,
    EvaluateSpec,
    FinetuneSpec,
    ImportSpec,
    JobOutcome,
    JobState,
    ModelCard,
    Platform,
    PlatformError,
    ProgressReport,
    QuotaCheck,
)
from platforms.datasets import ColumnMapping, RowPolicy, check_labels, load_examples, split_examples
from platforms.local import training
from platforms.local.catalog import LocalCatalog
from platforms.local.datasets import LocalDatasets
from platforms.local.endpoints import LocalEndpoints, input_limit, predictor_module
from platforms.local.imports import import_model
from platforms.local.library_logs import route_library_logs
from platforms.local.task_contract import TrainableTaskModule
from platforms.local.task_modules import TASK_MODULES
from platforms.tasks import SINGLE_LABEL_TASKS, TASKS, Task

def _language_options(task: Task, source_lang: str | None, target_lang: str | None) -> dict[str, str | None]:
    """Only translation takes language codes (T5-style models need them for their prompt prefix)."""
    return {"source_lang": source_lang, "target_lang": target_lang} if task == Task.TRANSLATION else {}


class _WarmModel:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.predict: Any = None


class LocalPlatform(Platform):
    name = "local"

    def __init__(self, models_dir: Path, *, max_upload_bytes: int = 100 * 1024 * 1024, seed: bool = True,
                 redis: Redis | None = None, endpoints_dir: Path | None = None, datasets_dir: Path | None = None,
                 warm_models: int = 2):
        """`redis` keeps endpoint records (endpoints need it); their logs go to `endpoints_dir`
        (default: `endpoints/` next to the models folder); registered datasets to `datasets_dir`
        (default: `datasets/` next to it); `try_model` keeps the last `warm_models` models tried loaded."""
        self.catalog = LocalCatalog(Path(models_dir))
        self.datasets = LocalDatasets(Path(datasets_dir) if datasets_dir else Path(models_dir).parent / "datasets")
        self.max_upload_bytes = max_upload_bytes
        self.redis = redis
        self.endpoints_dir = Path(endpoints_dir) if endpoints_dir else Path(models_dir).parent / "endpoints"
        self.warm_models = max(1, warm_models)
        self._predictors: OrderedDict[tuple[str, Task], _WarmModel] = OrderedDict()
        self._predictors_lock = threading.Lock()
        self.catalog.root.mkdir(parents=True, exist_ok=True)
        if seed:
            self.catalog.ensure_seeded()

    # ------------------------------------------------------------------ catalog

    def list_models(self, task: Task | None = None) -> list[ModelCard]:
        return self.catalog.list(task)

    def get_model(self, ref: str) -> ModelCard:
        return self.catalog.get(ref)

    # ------------------------------------------------------------------ work

    def _module(self, task: Task, card: ModelCard, action: str) -> TrainableTaskModule:
        route_library_logs()
        module = TASK_MODULES.get(task)
        if module is None or not hasattr(module, "evaluate"):
            supported = ", ".join(t.value for t, m in TASK_MODULES.items() if hasattr(m, "evaluate"))
            raise PlatformError(f"the local platform cannot {action} {task} yet", hint=f"Supported: {supported}")
        if not card.supports(task):
            raise PlatformError(
                card.unsupported(task),
                hint=f"Its tasks: {', '.join(card.tasks)}. Pick a model for {task} with `search task:{task}`",
            )
        return module

    def _load(self, ref: DataRef, mapping: ColumnMapping, rows: RowPolicy, *, training: bool = True) -> list[dict[str, Any]]:
        return load_examples(Path(ref.path), mapping, ref.name, max_bytes=self.max_upload_bytes, training=training,
                             rows=rows)

    def run_finetune(self, spec: FinetuneSpec, report: ProgressReport) -> JobOutcome:
        card = self.catalog.get(spec.model)
        module = self._module(spec.task, card, "fine-tune")
        mapping = ColumnMapping.build(spec.mapping, spec.task)
        spec.split.check()
        train = self._load(spec.train, mapping, spec.rows)
        stratify = "label" if spec.task in SINGLE_LABEL_TASKS else None
        if stratify:
            check_labels(train, spec.train.name)
        fractions = [f for f, own in ((spec.split.validation, spec.validation), (spec.split.test, spec.test)) if own is None]
        train, *held_out = split_examples(train, fractions, seed=spec.hyperparameters.seed, stratify_key=stratify)
        test = self._load(spec.test, mapping, spec.rows) if spec.test else held_out[-1]
        if not test:
            raise PlatformError(
                f"{spec.train.name} has too few rows to set a test split aside",
                hint="Add rows, raise the test split, or give a test file",
            )
        output_name = spec.output_name or f"{card.name}-ft"
        version, out_dir = self.catalog.new_version_dir(output_name)
        try:
            result = module.finetune(self.catalog.path(card.ref), train, test, spec.hyperparameters, report, out_dir,
                                     **_language_options(spec.task, spec.source_lang, spec.target_lang))
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
            rows=result.rows,
            result={} if spec.test else {"test_data": self._keep_test_split(output.ref, spec.train.name, test)},
        )

    def _keep_test_split(self, output_ref: str, train_name: str, test: list[dict[str, Any]]) -> dict[str, Any]:
        """The rows split off for testing, kept (in the task's own keys) next to the catalog, so the
        base model can later be scored on exactly the rows the fine-tuned one was (Compare with base)."""
        folder = self.catalog.root.parent / "held-out"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{output_ref.replace(':', '-')}.jsonl"
        with path.open("w", encoding="utf-8") as stream:
            for example in test:
                stream.write(json.dumps(example, ensure_ascii=False) + "\n")
        return {"path": str(path), "name": f"test split of {train_name}", "mapping": {key: key for key in test[0]}}

    def run_evaluation(self, spec: EvaluateSpec, report: ProgressReport) -> JobOutcome:
        card = self.catalog.get(spec.model)
        module = self._module(spec.task, card, "evaluate")
        mapping = ColumnMapping.build(spec.mapping, spec.task)
        examples = self._load(spec.test, mapping, spec.rows, training=False)
        result = module.evaluate(self.catalog.path(card.ref), examples, max_length=spec.max_length,
                                 batch_size=spec.batch_size,
                                 **_language_options(spec.task, spec.source_lang, spec.target_lang))
        return JobOutcome(state=JobState.COMPLETED, metrics=result.metrics, samples=result.samples,
                          rows=result.rows, message=result.message,
                          result={"parameters": result.parameters} if result.parameters else {})

    def compute_options(self, purpose: str, *, model: ModelCard | None = None) -> list[ComputeOption]:
        import os

        options = [ComputeOption(name="cpu", label=f"cpu · {os.cpu_count()} cores on this machine", free_instances=1)]
        if training.device() == "cuda":
            import torch

            options.insert(0, ComputeOption(name="cuda", label=f"cuda · {torch.cuda.get_device_name(0)}",
                                            free_instances=1))
        return options

    def compute_gpus(self, compute: str | None) -> int | None:
        """`cpu` has none; `cuda` (and no choice, which trains where it can) the GPUs this machine has."""
        if compute == "cpu":
            return 0
        gpus = training.gpu_count()
        if compute is None and not gpus:
            return 0
        if compute in ("cuda", None):
            return max(gpus, 1)
        return None

    def check_quota(self, compute: str, instances: int, *, model: ModelCard | None = None,
                    deployment: bool = False) -> QuotaCheck:
        names = [option.name for option in self.compute_options("any")]
        if compute not in names:
            return QuotaCheck(ok=False, message=f'unknown compute "{compute}" on the local platform',
                              suggestions=[f"Choose {' or '.join(names)}"])
        if instances != 1:
            return QuotaCheck(ok=False, message=f"the local platform runs one instance, not {instances}",
                              suggestions=["Use 1 instance", "Use FMBOT_PLATFORM=azureml for more"], field="instances")
        return QuotaCheck(ok=True)

    def job_status(self, external_id: str) -> JobOutcome:
        raise PlatformError("local jobs run inside the worker and have no remote status")

    def cancel(self, external_id: str) -> None:
        """Local jobs stop at their next step when the ledger says canceled; nothing remote to cancel."""

    # ------------------------------------------------------------------ try, endpoints, import

    def _task_for(self, card: ModelCard, task: Task | None) -> Task:
        task = task or card.tasks[0]
        if not card.supports(task, served=True):
            raise PlatformError(card.unsupported(task), hint=f"Its tasks: {', '.join(card.tasks)}")
        return task

    def sample_input(self, task: Task) -> dict[str, Any]:
        return dict(predictor_module(task).SAMPLE_INPUT)

    def try_model(self, ref: str, task: Task, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Keeps the last `warm_models` models tried loaded, so trying several inputs waits for loading
        once. Each model has its own lock, held while it loads and while it predicts: concurrent
        tries of one model load it once and never interleave, and tries of different models never
        share a slot (one slot shared by all once answered one model's try with another's output)."""
        card = self.catalog.get(ref)
        task = self._task_for(card, task)
        warm = self._warm(card.ref, task)
        with warm.lock:
            if warm.predict is None:
                path = self.catalog.path(card.ref)
                warm.predict = predictor_module(task).load_predictor(path, max_length=input_limit(path))
            return warm.predict(inputs)

    def _warm(self, ref: str, task: Task) -> _WarmModel:
        """The slot of `(ref, task)`, most recently used last; the least recently used beyond
        `warm_models` is dropped (a try still holding it finishes with it)."""
        with self._predictors_lock:
            warm = self._predictors.get((ref, task))
            if warm is None:
                warm = self._predictors[(ref, task)] = _WarmModel()
            self._predictors.move_to_end((ref, task))
            while len(self._predictors) > self.warm_models:
                self._predictors.popitem(last=False)
            return warm

    def _endpoints(self) -> LocalEndpoints:
        if self.redis is None:
            raise PlatformError("local endpoints need Redis to keep their records", hint="Set REDIS_URL")
        return LocalEndpoints(self.redis, self.endpoints_dir)

    def deploy(self, spec: DeploySpec) -> EndpointInfo:
        card = self.catalog.get(spec.model)
        return self._endpoints().deploy(spec, card, self._task_for(card, spec.task), self.catalog.path(card.ref))

    def get_endpoint(self, name: str) -> EndpointInfo:
        return self._endpoints().get(name)

    def list_endpoints(self) -> list[EndpointInfo]:
        return self._endpoints().list()

    def endpoint_activity(self, name: str) -> EndpointActivity | None:
        """Counted by the serving processes in files on the host they run on (only read there)."""
        return self._endpoints().activity(name)

    def delete_endpoint(self, name: str) -> EndpointInfo:
        return self._endpoints().delete(name)

    def endpoint_logs(self) -> tuple[Path, set[str]]:
        """Where endpoint logs are written, and those of endpoints still recorded (kept)."""
        return self.endpoints_dir, self._endpoints().log_files() if self.redis is not None else set()

    def pick_up_endpoint_key(self, name: str) -> SecretStr | None:
        key = self._endpoints().pick_up_key(name)
        return SecretStr(key) if key is not None else None

    def rotate_endpoint_key(self, name: str) -> EndpointInfo:
        return self._endpoints().rotate_key(name)

    def import_model(self, spec: ImportSpec, report: ProgressReport) -> JobOutcome:
        return import_model(self.catalog, spec, report)


__all__ = ["LocalPlatform", "TASKS"]

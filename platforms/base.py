"""The one interface both compute platforms implement, and the typed values that cross it.

Handlers and workers only ever see these types, so the Slack forms, the CLI and the job ledger
are the same whether the work runs on this machine or in an Azure ML workspace.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator

from platforms.datasets import RowPolicy, SplitPlan
from platforms.errors import FmbotError, describe
from platforms.tasks import Task


class PlatformError(FmbotError):
    """A failure of a platform a user can act on; `str()` is the message shown to them."""


class ModelNotFound(PlatformError):
    pass


class SpecError(PlatformError):
    """A value a user gave for a spec that its rules refuse, with the field it belongs to; beside
    that field a form shows only what is wrong (`problem`), the field's own label says which."""

    def __init__(self, message: str, *, field: str | None = None, hint: str | None = None,
                 problem: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.problem = problem

    @property
    def on_field(self) -> str:
        return self.problem or str(self)


class JobCanceled(Exception):
    """Raised from a progress report when the user canceled, to stop training between steps."""


class ModelCard(BaseModel):
    name: str
    version: str
    tasks: list[Task]
    license: str | None = None
    description: str = ""
    source: str = ""
    base_model: str | None = None
    training_data: str | None = None
    metrics: dict[str, float] = {}
    inference_compute: list[str] = []
    finetune_compute: list[str] = []
    evaluation_compute: list[str] = []
    shared_quota: bool = False
    # Where they differ from `tasks` (Azure's registry lists fine-tuning tasks apart from inference ones).
    finetune_tasks: list[Task] = []
    # Offered by Azure as a serverless, pay-per-token API (MaaS).
    serverless: bool = False
    created_at: datetime | None = None
    properties: dict[str, Any] = {}

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def supports(self, task: Task, *, served: bool = False, tunable: bool = False) -> bool:
        """The one answer to "does this model do this task"; `served` (try, endpoints) lets a
        text-generation model answer chat-completion; `tunable` (evaluate) counts the tasks it can be
        fine-tuned for, so a base model is scored on the task before it is trained for it. A text
        classifier's encoder takes a multi-label head as well as a single-label one."""
        return (task in self.tasks or (tunable and task in self.finetune_tasks)
                or (served and task == Task.CHAT_COMPLETION and Task.TEXT_GENERATION in self.tasks)
                or (task == Task.TEXT_CLASSIFICATION_MULTILABEL and not served
                    and self.supports(Task.TEXT_CLASSIFICATION, tunable=tunable)))

    def unsupported(self, task: Task) -> str:
        return f"{self.ref} does not support {task}"


MODEL_NAME_RULE = "up to 255 letters, digits, '-', '_' or '.', starting with a letter or digit, without '..'"
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_model_name(name: str) -> str:
    """Azure ML's model naming rule, on both platforms: a name is one folder of the local catalog,
    so no `/` or `..` can reach outside it or into another model's folder."""
    if not _MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f'"{name}" is not a valid model name: use {MODEL_NAME_RULE}')
    return name


class ModelRef(BaseModel):
    """`name` (latest version) or `name:version`, as users type it."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, version = text.strip().partition(":")
        try:
            check_model_name(name)
            if version and (not _VERSION.fullmatch(version) or ".." in version):
                raise ValueError(version)
        except ValueError:
            raise PlatformError(f'"{text[:80]}" is not a model name', hint="Use NAME or NAME:VERSION, see `models`") from None
        return cls(name=name, version=version or None)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


class DataRef(BaseModel):
    """A dataset as the worker reads it (`path`) and as the user knows it (`name`); `dataset` is the
    registered dataset version it is (`NAME:VERSION`), so a job's record can name it."""

    path: str
    name: str
    dataset: str | None = None


class DatasetInfo(BaseModel):
    """A registered dataset version: where the platform keeps it and what it holds."""

    name: str
    version: str
    path: str
    file_name: str
    rows: int | None = None
    columns: list[str] = []
    size_bytes: int | None = None
    sha256: str | None = None
    registered_by: str | None = None
    description: str = ""
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


class DatasetNotFound(PlatformError):
    pass


class UserSpec(BaseModel):
    """A spec built from what a user typed: a value its rules refuse raises a SpecError naming the
    field (pydantic lets non-ValueErrors through unwrapped), so every surface marks that field on its
    form and the handlers need no try/except around building one."""

    @model_validator(mode="wrap")
    @classmethod
    def _refuse_with_field(cls, data: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SpecError(describe(first), field=".".join(str(part) for part in first["loc"]) or None,
                            problem=first["msg"].removeprefix("Value error, ")) from None


class JobSpec(UserSpec):
    """What every queued job asks of the compute, which is what cost and approval are judged on."""

    compute: str | None = None
    instances: int = 1


class Hyperparameters(UserSpec):
    epochs: int = Field(3, ge=1, le=100)
    learning_rate: float = Field(5e-5, gt=0, le=1)
    batch_size: int = Field(16, ge=1, le=1024)
    max_length: int = Field(128, ge=8, le=8192)
    seed: int = 42
    lora: bool = False


class FinetuneSpec(JobSpec):
    model: str
    task: Task
    train: DataRef
    validation: DataRef | None = None
    test: DataRef | None = None
    split: SplitPlan = SplitPlan()
    mapping: dict[str, str]
    hyperparameters: Hyperparameters = Hyperparameters()
    output_name: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    rows: RowPolicy = RowPolicy()

    @field_validator("output_name")
    @classmethod
    def _output_name(cls, value: str | None) -> str | None:
        return None if value is None else check_model_name(value)


class EvaluateSpec(JobSpec):
    model: str
    task: Task
    test: DataRef
    mapping: dict[str, str]
    max_length: int = Field(256, ge=8, le=8192)
    batch_size: int = Field(16, ge=1, le=1024)
    source_lang: str | None = None
    target_lang: str | None = None
    rows: RowPolicy = RowPolicy()
    # A comparison member: its per-row predictions rank it with an interval, so a platform that can
    # write them only on one of its paths (Azure's two-step pipeline) takes that path.
    for_comparison: bool = False


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELED)


class Progress(BaseModel):
    step: int
    total: int
    loss: float | None = None
    epoch: float | None = None
    phase: str = "training"

    @field_validator("total")
    @classmethod
    def _positive(cls, value: int) -> int:
        return max(value, 1)

    @property
    def fraction(self) -> float:
        return min(self.step / self.total, 1.0)


ProgressReport = Callable[[Progress], None]


class JobOutcome(BaseModel):
    """Where a platform job stands; final outcomes carry metrics and the model they produced."""

    state: JobState
    external_id: str | None = None
    metrics: dict[str, float] = {}
    output_model: str | None = None
    loss_history: list[tuple[int, float]] = []
    samples: list[dict[str, Any]] = []
    # Scored test rows ({input, reference, prediction}, bounded), in test-file order, for comparisons.
    rows: list[dict[str, Any]] = []
    message: str | None = None
    # Kind-specific results users may see (deploy: endpoint and url; never a key).
    result: dict[str, Any] = {}


class ComputeOption(BaseModel):
    """A compute choice for a form: `name` is submitted, `label` shows size and free quota."""

    name: str
    label: str
    free_instances: int | None = None


class QuotaCheck(BaseModel):
    """`field` is the form field a refusal is about: the compute chosen, or how many instances."""

    ok: bool
    message: str = ""
    suggestions: list[str] = []
    field: Literal["compute", "instances"] = "compute"


class DatasetStore(Protocol):
    """Registered datasets as a platform keeps them: versioned, each version's file and what it holds."""

    def register(self, name: str, path: Path, info: DatasetInfo) -> DatasetInfo: ...
    def list(self) -> list[DatasetInfo]: ...
    def get(self, ref: str) -> DatasetInfo: ...
    def delete(self, ref: str) -> DatasetInfo: ...


class Platform(ABC):
    """What fmbot needs from a place that stores, trains, evaluates and serves models.

    Local work runs to completion inside `run_*` (the caller is an RQ worker); remote work
    returns a RUNNING outcome with an `external_id` that the worker then polls with `job_status`.
    """

    name: str
    # Tasks this platform fine-tunes beyond the task table's, and whether LoRA applies to every task.
    extra_finetune_tasks: tuple[Task, ...] = ()
    lora_on_every_task: bool = False

    @abstractmethod
    def list_models(self, task: Task | None = None) -> list[ModelCard]: ...

    def finetune_card(self, model: str, task: Task) -> ModelCard | None:
        """The card to fine-tune for `task`, refusing a model that does not support it; None where the
        platform trains a model it pulls by id (a Hugging Face id on Azure ML)."""
        card = self.get_model(model)
        if not card.supports(task):
            raise PlatformError(card.unsupported(task), hint=f"Its tasks: {', '.join(card.tasks)}")
        return card

    def check_deploy(self, card: ModelCard, spec: DeploySpec) -> None:
        """Refuses, before anything is queued, a deploy this platform would refuse in the worker."""

    def evaluation_card(self, model: str, task: Task) -> ModelCard:
        """The card to evaluate on `task`: one of its tasks, or one it can be fine-tuned for."""
        card = self.get_model(model)
        if not card.supports(task, tunable=True):
            tasks = list(dict.fromkeys([*card.tasks, *card.finetune_tasks]))
            raise PlatformError(card.unsupported(task), hint=f"Its tasks: {', '.join(tasks)}")
        return card

    @abstractmethod
    def get_model(self, ref: str) -> ModelCard:
        """The card of `name` or `name:version`; raises ModelNotFound with the nearest names."""

    @abstractmethod
    def run_finetune(self, spec: FinetuneSpec, report: ProgressReport) -> JobOutcome: ...

    @abstractmethod
    def run_evaluation(self, spec: EvaluateSpec, report: ProgressReport) -> JobOutcome: ...

    @abstractmethod
    def job_status(self, external_id: str) -> JobOutcome: ...

    @abstractmethod
    def cancel(self, external_id: str) -> None: ...

    def compute_options(self, purpose: str, *, model: ModelCard | None = None) -> list[ComputeOption]:
        """Compute a job of `purpose` (finetune, evaluate, deploy) may run on, best first; with `model`,
        only what that model allows."""
        return [ComputeOption(name="default", label="default compute")]

    def check_quota(self, compute: str, instances: int, *, model: ModelCard | None = None,
                    deployment: bool = False) -> QuotaCheck:
        """Whether `instances` of `compute` fit in free quota (`deployment`: as an endpoint's instances),
        with what to do when they do not."""
        return QuotaCheck(ok=True)

    def compute_gpus(self, compute: str | None) -> int | None:
        """GPUs per instance of `compute`, read from what the platform says the compute is (its VM
        size), never guessed from its name; None when that cannot be known (the cost is then
        counted as the costliest)."""
        return None

    def vm_size(self, compute: str | None) -> str | None:
        """The VM size `compute` runs on (a cluster's size, not its name), which prices are listed by;
        None where the platform has no VM sizes (local) or it cannot be read."""
        return None

    def sample_input(self, task: Task) -> dict[str, Any]:
        """The input `try` uses when the user gives none, like the studio's Sample Inference form."""
        raise PlatformError(f"{self.name} has no sample input for {task}")

    def try_model(self, ref: str, task: Task, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Predictions for `inputs` (dicts keyed by the task's input keys, see `platforms.inputs`)."""
        raise PlatformError(f"trying a model is not supported on the {self.name} platform")

    def deploy(self, spec: DeploySpec) -> EndpointInfo:
        """Start an endpoint and return once it answers; a taken name raises PlatformError."""
        raise PlatformError(f"deploying is not supported on the {self.name} platform")

    def get_endpoint(self, name: str) -> EndpointInfo:
        raise PlatformError(f"endpoints are not supported on the {self.name} platform")

    def list_endpoints(self) -> list[EndpointInfo]:
        raise PlatformError(f"endpoints are not supported on the {self.name} platform")

    def delete_endpoint(self, name: str) -> EndpointInfo:
        raise PlatformError(f"endpoints are not supported on the {self.name} platform")

    def pick_up_endpoint_key(self, name: str) -> SecretStr | None:
        """The endpoint's key for its owner: a platform that keeps only a hash hands a key over once
        (None afterwards, until it is rotated); one that keeps keys itself (Azure) reads them."""
        raise PlatformError(f"endpoints are not supported on the {self.name} platform")

    def rotate_endpoint_key(self, name: str) -> EndpointInfo:
        """Replace the endpoint's key: the old one stops working, the new one waits for
        `pick_up_endpoint_key`."""
        raise PlatformError(f"rotating endpoint keys is not supported on the {self.name} platform")

    def endpoint_activity(self, name: str) -> EndpointActivity | None:
        """The endpoint's scoring requests and the last one's time; None where the platform cannot
        tell (fmbot then counts idle time from when the endpoint started)."""
        return None

    def import_model(self, spec: ImportSpec, report: ProgressReport) -> JobOutcome:
        raise PlatformError(f"importing models is not supported on the {self.name} platform")

    # Registered datasets: a checked file kept as a named, versioned copy that forms and `data:` refer to.

    # Where registered datasets are kept (local folder, Azure data assets); None where a platform has none.
    datasets: DatasetStore | None = None

    def _datasets(self) -> DatasetStore:
        if self.datasets is None:
            raise PlatformError(f"registered datasets are not supported on the {self.name} platform")
        return self.datasets

    def register_dataset(self, name: str, path: Path, info: DatasetInfo) -> DatasetInfo:
        """Keep `path` as the next version of `name` (or return the version already holding the same
        bytes); `info` carries what the caller counted: rows, columns, who, description."""
        return self._datasets().register(name, path, info)

    def list_datasets(self) -> list[DatasetInfo]:
        return self._datasets().list()

    def get_dataset(self, ref: str) -> DatasetInfo:
        """`NAME` (latest version) or `NAME:VERSION`; DatasetNotFound names what exists."""
        return self._datasets().get(ref)

    def delete_dataset(self, ref: str) -> DatasetInfo:
        """Remove (Azure: archive) one version, `NAME:VERSION`."""
        return self._datasets().delete(ref)

    def dataset_input(self, info: DatasetInfo) -> DataRef:
        """How a job reads a registered dataset version; named `data:NAME:VERSION/FILE`, so messages
        name both and the file's suffix still tells its format."""
        return DataRef(path=info.path, name=f"data:{info.ref}/{info.file_name}", dataset=info.ref)


ENDPOINT_NAME_RULE = "3 to 32 characters: a letter first, then letters, digits or hyphens"
MAX_ENDPOINT_INSTANCES = 8
IMPORT_TASKS = (
    Task.FILL_MASK, Task.TOKEN_CLASSIFICATION, Task.QUESTION_ANSWERING, Task.SUMMARIZATION, Task.TEXT_GENERATION,
    Task.TEXT_CLASSIFICATION, Task.TRANSLATION, Task.IMAGE_CLASSIFICATION, Task.TEXT_TO_IMAGE,
)


def check_endpoint_name(name: str) -> str:
    """Azure ML's online endpoint naming rule, applied on both platforms so names move between them."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{2,31}", name):
        raise ValueError(f'"{name}" is not a valid endpoint name: use {ENDPOINT_NAME_RULE}')
    return name


class DeploySpec(JobSpec):
    model: str
    endpoint: str
    task: Task | None = None
    owner: str | None = None
    serverless: bool = False
    content_filtering: bool = True
    max_batch_size: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(5.0, ge=0, le=1000)
    # Hours the endpoint lives before fmbot deletes it: None until the handler fills in the policy's
    # default; 0 for an endpoint that never ends (where the policy allows it).
    ttl_hours: float | None = Field(None, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return check_endpoint_name(value)

    @field_validator("instances")
    @classmethod
    def _instances(cls, value: int) -> int:
        if not 1 <= value <= MAX_ENDPOINT_INSTANCES:
            raise ValueError(f"instances must be 1 to {MAX_ENDPOINT_INSTANCES}, not {value}")
        return value


class EndpointState(StrEnum):
    CREATING = "creating"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    STOPPED = "stopped"


class EndpointInfo(BaseModel):
    """An endpoint as users see it; `key` is a SecretStr so it never lands in a log or a `--json` list."""

    name: str
    model: str
    task: Task
    url: str | None = None
    key: SecretStr | None = None
    state: EndpointState
    instances: int
    pid: int | None = None
    pids: list[int] = []
    owner: str | None = None
    created_at: datetime | None = None
    message: str | None = None
    # The host whose processes serve it (local endpoints); only a process there can stop them.
    host: str | None = None


class EndpointActivity(BaseModel):
    """Scoring requests an endpoint answered, as far as the platform counts them."""

    requests: int = 0
    last_request_at: datetime | None = None


class ImportSpec(JobSpec):
    """`model_id` is a Hugging Face id (`owner/name`); `source` a local HF-format folder, else the hub."""

    model_id: str
    task: Task
    source: str | None = None
    license: str | None = None
    name: str | None = None
    max_bytes: int | None = None  # the largest model the requester may import from the hub (fair use)

    @field_validator("model_id")
    @classmethod
    def _model_id(cls, value: str) -> str:
        part = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
        if not re.fullmatch(f"{part}/{part}", value.strip()) or ".." in value or "--" in value:
            raise ValueError(f'"{value}" is not a Hugging Face model id: use OWNER/NAME, e.g. google-bert/bert-base-uncased')
        return value.strip()

    @field_validator("name")
    @classmethod
    def _catalog_name(cls, value: str | None) -> str | None:
        return None if value is None else check_model_name(value)

    @field_validator("task", mode="before")
    @classmethod
    def _importable(cls, value: Any) -> Any:
        task = str(value).strip().lower()
        if task not in IMPORT_TASKS:
            raise SpecError(f'"{value}" models cannot be imported', hint=f"Import supports: {', '.join(IMPORT_TASKS)}",
                            field="task")
        return task

    @property
    def model(self) -> str:
        """The ledger's model of an import is the hub id it brings in."""
        return self.model_id

    @property
    def catalog_name(self) -> str:
        """Azure's import names the registered model after the id with `/` replaced by `-`."""
        return self.name or self.model_id.replace("/", "-")

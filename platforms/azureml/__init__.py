"""The Azure Machine Learning platform: the registry's catalog, its fine-tune, evaluation and import
pipeline components run in a workspace, and managed or serverless endpoints.

Jobs here are remote and long: `run_*` submits once and returns RUNNING with the Azure job name,
which the worker stores in the ledger and polls with `job_status` (see `workers.jobs.poll_job`).
"""

from __future__ import annotations

import difflib
import logging
from functools import partial
from pathlib import Path
from typing import Any

from azure.core.credentials import TokenCredential
from pydantic import SecretStr
from redis import Redis

from platforms.azureml import deploy as endpoints
from platforms.azureml import jobs, quota
from platforms.azureml.catalog import (
    CatalogCache,
    card_from_model,
    fetch_cards,
    read_model,
)
from platforms.azureml.clients import AzureClients, AzureTarget
from platforms.azureml.data import AzureDatasets, DataUploader
from platforms.azureml.errors import AzureNotFound, call
from platforms.azureml.evaluation import refuse_task, submit_evaluation
from platforms.azureml.finetune import PIPELINES, submit_finetune
from platforms.azureml.imports import registered_model, submit_import
from platforms.azureml.register import register_finetuned
from platforms.azureml.metrics import job_metrics
from platforms.azureml.predictions import read_rows
from platforms.base import (
    ComputeOption,
    DataRef,
    DatasetInfo,
    DeploySpec,
    EndpointInfo,
    EvaluateSpec,
    FinetuneSpec,
    ImportSpec,
    JobOutcome,
    JobState,
    ModelCard,
    ModelNotFound,
    ModelRef,
    Platform,
    PlatformError,
    ProgressReport,
    QuotaCheck,
)
from platforms.tasks import Task

log = logging.getLogger(__name__)
SETTINGS_HINT = "Set AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE (see the README's Azure ML section)"


class AzureMLPlatform(Platform):
    name = "azureml"
    # The registry has a chat-completion pipeline, and every pipeline takes `apply_lora`.
    extra_finetune_tasks = (Task.CHAT_COMPLETION,)
    lora_on_every_task = True

    def __init__(self, clients: AzureClients, data_dir: Path, *, redis: Redis | None = None):
        self.clients, self.data_dir = clients, Path(data_dir)
        self.catalog = CatalogCache(lambda previous: fetch_cards(clients.registry, clients.target.registry,
                                                                 clients.capture.metadata_of, previous), redis)
        self.uploader = DataUploader(clients, self.data_dir / "azureml")
        self.datasets = AzureDatasets(clients)

    @classmethod
    def from_settings(cls, *, subscription_id: str | None, resource_group: str | None, workspace: str | None,
                      registry: str = "azureml", data_dir: Path | str, credential: TokenCredential | None = None,
                      cloud: str | None = None, cloud_metadata: dict[str, str] | None = None,
                      connection_verify: str | None = None, redis: Redis | None = None,
                      redis_url: str | None = None) -> AzureMLPlatform:
        """`credential` defaults to DefaultAzureCredential (managed identity, then `az login`); the SDK's
        own environment variables (ARM_CLOUD_METADATA_URL, REQUESTS_CA_BUNDLE, ...) still apply."""
        if not (subscription_id and resource_group and workspace):
            raise PlatformError("the Azure ML platform is not configured", hint=SETTINGS_HINT)
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        target = AzureTarget(subscription_id=subscription_id, resource_group=resource_group, workspace=workspace,
                             registry=registry or "azureml", cloud=cloud, cloud_metadata=cloud_metadata,
                             connection_verify=connection_verify)
        if redis is None and redis_url:
            redis = Redis.from_url(redis_url)
        return cls(AzureClients(target, credential), Path(data_dir), redis=redis)

    # ------------------------------------------------------------------ catalog

    def list_models(self, task: Task | None = None) -> list[ModelCard]:
        return [c for c in self.catalog.cards() if task is None or task in c.tasks]

    def get_model(self, ref: str) -> ModelCard:
        wanted = ModelRef.parse(ref)
        for card in self.catalog.cards():
            if card.name == wanted.name and wanted.version in (None, card.version):
                return card
        try:
            model = call(partial(read_model, self.clients.registry, wanted.name, wanted.version),
                         what=f"read model {wanted}", scope="registry")
            return card_from_model(model, self.clients.target.registry, self.clients.capture.metadata_of(model.id))
        except AzureNotFound:
            pass
        try:
            return self._workspace_card(wanted)
        except AzureNotFound:
            names = [c.name for c in self.catalog.cards()]
            near = difflib.get_close_matches(wanted.name, names, n=3)
            raise ModelNotFound(f'there is no model "{wanted}" in the {self.clients.target.registry} registry or the workspace',
                                hint=f"Did you mean {', '.join(near)}?" if near else "See `models` for the catalog") from None

    def _workspace_card(self, wanted: ModelRef) -> ModelCard:
        """Fine-tuned and imported models live in the workspace, not the registry."""
        model = call(partial(read_model, self.clients.workspace, wanted.name, wanted.version),
                     what=f"read model {wanted}")
        card = card_from_model(model, self.clients.target.registry)
        return card.model_copy(update={"source": f"azureml:{model.name}:{model.version}"})

    def _card_or_none(self, ref: str) -> ModelCard | None:
        """Fine-tuning also takes a Hugging Face id (`owner/name`); registry names never hold a `/`."""
        return None if "/" in ref else self.get_model(ref)

    def finetune_card(self, model: str, task: Task) -> ModelCard | None:
        """The registry publishes fine-tuning tasks apart from inference ones; a Hugging Face id
        (`owner/name`) is fine-tuned without a card, by the pipeline's `huggingface_id` input."""
        if task == Task.TEXT_CLASSIFICATION_MULTILABEL:
            raise PlatformError("Azure ML's text_classification_pipeline learns one label per row, so it cannot "
                                "fine-tune text-classification-multilabel",
                                hint="Fine-tune it on the local platform (FMBOT_PLATFORM=local); Azure ML can "
                                     "evaluate multi-label models")
        if task not in PIPELINES:
            raise PlatformError(f"Azure ML has no fine-tune pipeline for {task}",
                                hint="Fine-tune supports " + ", ".join(PIPELINES))
        card = self._card_or_none(model)
        if card is not None and task not in (card.finetune_tasks or card.tasks):
            raise PlatformError(f"{card.ref} cannot be fine-tuned for {task} on Azure ML",
                                hint=f"Its fine-tuning tasks: {', '.join(card.finetune_tasks or card.tasks) or 'none'}")
        return card

    def check_deploy(self, card: ModelCard, spec: DeploySpec) -> None:
        """A managed deployment's size: the one chosen if the model allows it, else one it lists."""
        if not spec.serverless:
            endpoints.inference_size(self.clients, card, spec.compute)

    def evaluation_card(self, model: str, task: Task) -> ModelCard:
        """Refused up front where Azure's evaluation components have no task for it."""
        refuse_task(task)
        return super().evaluation_card(model, task)

    # ------------------------------------------------------------------ jobs

    def run_finetune(self, spec: FinetuneSpec, report: ProgressReport) -> JobOutcome:
        job = submit_finetune(self.clients, self.uploader, spec, self._card_or_none(spec.model))
        return JobOutcome(state=JobState.RUNNING, external_id=job.name, message=job.studio_url)

    def run_evaluation(self, spec: EvaluateSpec, report: ProgressReport) -> JobOutcome:
        job = submit_evaluation(self.clients, self.uploader, spec, self.get_model(spec.model))
        return JobOutcome(state=JobState.RUNNING, external_id=job.name, message=job.studio_url)

    def dataset_input(self, info: DatasetInfo) -> DataRef:
        """A registered dataset is a data asset: the job reads it where it is, as `azureml:NAME:VERSION`."""
        return DataRef(path=info.path, name=info.path, dataset=info.ref)

    def import_model(self, spec: ImportSpec, report: ProgressReport) -> JobOutcome:
        job = submit_import(self.clients, spec)
        return JobOutcome(state=JobState.RUNNING, external_id=job.name, message=job.studio_url)

    def job_status(self, external_id: str) -> JobOutcome:
        job = jobs.get_job(self.clients, external_id)
        state = jobs.state_of(job)
        outcome = JobOutcome(state=state, external_id=external_id, message=f"Azure: {jobs.status_text(job)} · {job.studio_url}")
        if state == JobState.FAILED:
            return outcome.model_copy(update={"message": f"Azure job {external_id} failed; its logs: {job.studio_url}"})
        if state != JobState.COMPLETED:
            return outcome
        kind = (job.tags or {}).get(jobs.TAG_KIND)
        if kind in ("finetune", "evaluate"):
            outcome = outcome.model_copy(update={"metrics": self._metrics(external_id)})
        if kind == "evaluate":
            rows, why = read_rows(self.clients, job)
            if why:
                log.warning("no scored rows for Azure job %s: %s", external_id, why)
            outcome = outcome.model_copy(update={"rows": rows, "result": {"rows_unavailable": why} if why else {}})
        if kind == "finetune":
            return outcome.model_copy(update={"output_model": register_finetuned(self.clients, job, self._base_card(job))})
        if kind == "import":
            return outcome.model_copy(update={"output_model": registered_model(self.clients, job)})
        return outcome

    def _metrics(self, job_name: str) -> dict[str, float]:
        """A finished job stays finished when its metrics cannot be read; the thread just shows none."""
        try:
            return job_metrics(self.clients, job_name)
        except PlatformError as exc:
            log.warning("metrics of Azure job %s are unavailable: %s", job_name, exc)
            return {}

    def _base_card(self, job: Any) -> ModelCard | None:
        base = (job.tags or {}).get(jobs.TAG_BASE, "")
        try:
            return self._card_or_none(base) if base else None
        except PlatformError:
            return None

    def cancel(self, external_id: str) -> None:
        call(lambda: self.clients.workspace.jobs.begin_cancel(external_id).result(), what=f"cancel job {external_id}")

    # ------------------------------------------------------------------ compute and quota

    def compute_options(self, purpose: str, *, model: ModelCard | None = None) -> list[ComputeOption]:
        """Workspace clusters first for jobs (no quota to check; managed endpoints cannot use them), then
        the current sizes the model allows for `purpose` (all current sizes without a model), with the
        instances that fit."""
        deploying = purpose == "deploy"
        clusters = [] if deploying else call(
            lambda: [c for c in self.clients.workspace.compute.list() if c.type == "amlcompute"],
            what="list compute clusters")
        usages, sizes = quota.read_usages(self.clients), quota.read_sizes(self.clients)
        allowed = {"deploy": "inference_compute", "finetune": "finetune_compute", "evaluate": "evaluation_compute"}
        names = getattr(model, allowed.get(purpose, ""), None) if model else None
        offered = quota.usable(sizes, names) if names else [s for s in sizes.values() if not s.retired]
        options = [ComputeOption(name=c.name, label=f"{c.name} (cluster, {c.size})") for c in clusters]
        for size in sorted(offered, key=lambda s: (-s.gpus, s.cores)):
            free_cores, _ = usages.free_cores(size.key)
            cores = quota.cores_needed(size, 1, deployment=deploying)
            free = free_cores // cores if free_cores is not None and cores else None
            options.append(ComputeOption(name=size.name, free_instances=free,
                                         label=f"{size.name} serverless ({size.cores} cores"
                                               f"{f', {size.gpus} GPU' if size.gpus else ''}; {free if free is not None else '?'} free)"))
        return options

    def compute_gpus(self, compute: str | None) -> int | None:
        """A VM size's GPUs from the region's size list; a cluster's from the size it was created
        with (a cluster called "cpu-small" may well run A100s)."""
        size = self.vm_size(compute)
        if size is None:
            return None
        try:
            info = quota.read_sizes(self.clients).get(size.lower())
        except PlatformError:
            return None
        return info.gpus if info is not None else None

    def vm_size(self, compute: str | None) -> str | None:
        if not compute:
            return None
        if compute.startswith("Standard_"):
            return compute
        try:
            return call(lambda: self.clients.workspace.compute.get(compute), what=f"read compute {compute}").size or None
        except PlatformError:
            return None

    def check_quota(self, compute: str, instances: int, *, model: ModelCard | None = None,
                    deployment: bool = False) -> QuotaCheck:
        if not compute.startswith("Standard_"):
            return QuotaCheck(ok=True, message=f"{compute} is a cluster: its own size limits apply")
        if model is None:
            candidates = []
        elif deployment:
            candidates = model.inference_compute
        else:
            candidates = model.finetune_compute + model.evaluation_compute
        return quota.check(quota.read_usages(self.clients), quota.read_sizes(self.clients), compute, instances,
                           model, candidates, deployment=deployment)

    # ------------------------------------------------------------------ endpoints

    def deploy(self, spec: DeploySpec) -> EndpointInfo:
        """Serverless only for models Azure offers so (MaaS); otherwise a managed endpoint on a size the
        model allows, checked against quota with the 20% Azure reserves for upgrades."""
        card = self.get_model(spec.model)
        if spec.serverless:
            return endpoints.deploy_serverless(self.clients, spec, card, content_safety=spec.content_filtering)
        size = endpoints.inference_size(self.clients, card, spec.compute)
        check = self.check_quota(size, spec.instances, model=card, deployment=True)
        if not check.ok:
            raise PlatformError(check.message, hint=" · ".join(check.suggestions))
        return endpoints.deploy_managed(self.clients, spec, card, size)

    def get_endpoint(self, name: str) -> EndpointInfo:
        return endpoints.get_endpoint(self.clients, name)

    def pick_up_endpoint_key(self, name: str) -> SecretStr | None:
        return endpoints.endpoint_key(self.clients, name)

    def rotate_endpoint_key(self, name: str) -> EndpointInfo:
        return endpoints.rotate_key(self.clients, name)

    def list_endpoints(self) -> list[EndpointInfo]:
        return endpoints.list_endpoints(self.clients)

    def delete_endpoint(self, name: str) -> EndpointInfo:
        return endpoints.delete_endpoint(self.clients, name)


__all__ = ["AzureMLPlatform"]

"""A finished fine-tune's MLflow output registered as a workspace model, once, tagged to be usable.

The worker polls a job until it is final and may see it completed more than once (a retried poll),
so registration first looks for a version made from the same job (`fmbot.job` tag). The tags are
the ones the registry's own models carry in their tags-and-properties layout (`task`, the
`*_compute_allow_list`s, `finetuning-tasks`), copied from the base model, so the fine-tuned model's
card has tasks and inference sizes and can be evaluated and deployed to managed compute.
"""

from __future__ import annotations

from typing import Any

from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Model

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import AzureNotFound, call
from platforms.azureml.finetune import OUTPUT
from platforms.base import ModelCard

TAG_JOB = "fmbot.job"


def _existing(clients: AzureClients, name: str, job_name: str) -> Model | None:
    try:
        versions = call(lambda: list(clients.workspace.models.list(name=name)), what=f"list the versions of {name}")
    except AzureNotFound:
        return None
    return next((m for m in versions if (m.tags or {}).get(TAG_JOB) == job_name), None)


def finetuned_tags(job: Any, base: ModelCard | None) -> tuple[dict[str, str], dict[str, str]]:
    tags = job.tags or {}
    task = tags.get(jobs.TAG_TASK, "")
    model_tags = {"task": task, TAG_JOB: job.name, jobs.TAG_BASE: tags.get(jobs.TAG_BASE, "")}
    if base is not None:
        model_tags |= {"inference_compute_allow_list": str(base.inference_compute),
                       "evaluation_compute_allow_list": str(base.evaluation_compute),
                       "finetune_compute_allow_list": str(base.finetune_compute),
                       **({"license": base.license} if base.license else {})}
    return model_tags, {"finetuning-tasks": task}


def register_finetuned(clients: AzureClients, job: Any, base: ModelCard | None) -> str:
    name = (job.tags or {}).get(jobs.TAG_OUTPUT) or f"{job.name}-model"
    found = _existing(clients, name, job.name)
    if found is not None:
        return f"{found.name}:{found.version}"
    tags, properties = finetuned_tags(job, base)
    model = Model(name=name, type=AssetTypes.MLFLOW_MODEL, path=f"azureml://jobs/{job.name}/outputs/{OUTPUT}",
                  description=f"fine-tuned by fmbot in Azure job {job.name}", tags=tags, properties=properties)
    created = call(lambda: clients.workspace.models.create_or_update(model), what=f"register {name}")
    return f"{created.name}:{created.version}"

"""Importing a Hugging Face model with the registry's `import_model` pipeline component.

The component downloads, converts to MLflow and registers the model in the workspace under
`custom_model_name`; its register step runs as the submitting user (`identity: user_identity` in
the spec), so the job carries `UserIdentityConfiguration`, as the import notebook sets it. The
download and conversion are CPU work: the job names a current CPU size, never the component's
retired default (STANDARD_NC6s_v3). The name and version it registered are written to its
`model_registration_details` output; once done, fmbot tags the model with its task so it can be
fine-tuned, evaluated and deployed at once.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from azure.ai.ml.entities import Job, UserIdentityConfiguration
from azure.ai.ml.exceptions import MlException
from azure.core.exceptions import AzureError

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.compute import place
from platforms.azureml.errors import call
from platforms.base import ImportSpec

IMPORT_COMPONENT = "import_model"
DETAILS_OUTPUT = "model_registration_details"


def submit_import(clients: AzureClients, spec: ImportSpec, compute: str | None = None) -> Job:
    component = jobs.registry_component(clients, IMPORT_COMPONENT)
    jobs.refuse_enum(component, "task_name", spec.task.value)
    placement = place(clients, compute, allowed=[], recommended=[], purpose="import", gpu=False)
    inputs = jobs.check_inputs(component, {"model_id": spec.model_id}, optional={
        "task_name": spec.task.value,
        "model_source": "Huggingface",
        "custom_model_name": spec.catalog_name,
        "compute": placement.compute,
        "instance_type": None if placement.cluster else placement.cpu_size,
    })
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-import-{spec.catalog_name}"[:80],
                       outputs={DETAILS_OUTPUT: DETAILS_OUTPUT}, compute=placement.cluster,
                       identity=UserIdentityConfiguration(),
                       tags={jobs.TAG_KIND: "import", jobs.TAG_OUTPUT: spec.catalog_name, jobs.TAG_TASK: spec.task.value})


def registered_model(clients: AzureClients, job: Job) -> str:
    """`name:version` from the registration details; the newest version under the expected name when
    the output cannot be downloaded (it lives in the workspace's blob storage). The model is tagged
    with its task, so the catalog gates (fine-tune, evaluate, deploy) know what it does."""
    expected = (job.tags or {}).get(jobs.TAG_OUTPUT, "")
    try:
        with tempfile.TemporaryDirectory() as folder:
            clients.workspace.jobs.download(job.name, output_name=DETAILS_OUTPUT, download_path=folder)
            details = json.loads(next(Path(folder).rglob("*.json")).read_text())
            name, version = details["name"], str(details["version"])
    except (AzureError, MlException, OSError, ValueError, KeyError, StopIteration):
        latest = call(lambda: clients.workspace.models.get(expected, label="latest"),
                      what=f"read the imported model {expected}")
        name, version = latest.name, str(latest.version)
    task = (job.tags or {}).get(jobs.TAG_TASK)
    model = call(lambda: clients.workspace.models.get(name, version=version), what=f"read the imported model {name}")
    if task and (model.tags or {}).get("task") != task:
        model.tags = {**(model.tags or {}), "task": task, "fmbot.job": job.name}
        model.properties = {**(model.properties or {}), "finetuning-tasks": task}
        call(lambda: clients.workspace.models.create_or_update(model), what=f"tag the imported model {name}")
    return f"{name}:{version}"

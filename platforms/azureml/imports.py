"""Importing a Hugging Face model with the registry's `import_model` pipeline component.

The component downloads, converts to MLflow and registers the model in the workspace; the name
and version it registered are written to its `model_registration_details` output (a JSON file).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from azure.ai.ml.entities import Job
from azure.ai.ml.exceptions import MlException
from azure.core.exceptions import AzureError

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import call
from platforms.base import ImportSpec

IMPORT_COMPONENT = "import_model"
DETAILS_OUTPUT = "model_registration_details"


def submit_import(clients: AzureClients, spec: ImportSpec, compute: str | None, instance_type: str | None) -> Job:
    component = jobs.registry_component(clients, IMPORT_COMPONENT)
    inputs = jobs.check_inputs(component, {"model_id": spec.model_id}, optional={
        "task_name": spec.task.value,
        "model_source": "Huggingface",
        "compute": compute or jobs.SERVERLESS,
        "instance_type": instance_type if not compute or compute == jobs.SERVERLESS else None,
    })
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-import-{spec.catalog_name}"[:80],
                       outputs={DETAILS_OUTPUT: DETAILS_OUTPUT}, compute=compute,
                       tags={jobs.TAG_KIND: "import", jobs.TAG_OUTPUT: spec.catalog_name})


def registered_model(clients: AzureClients, job: Job) -> str:
    """`name:version` from the registration details; the newest version under the expected name when
    the output cannot be downloaded (it lives in the workspace's blob storage)."""
    expected = (job.tags or {}).get(jobs.TAG_OUTPUT, "")
    try:
        with tempfile.TemporaryDirectory() as folder:
            clients.workspace.jobs.download(job.name, output_name=DETAILS_OUTPUT, download_path=folder)
            details = json.loads(next(Path(folder).rglob("*.json")).read_text())
            return f"{details['name']}:{details['version']}"
    except (AzureError, MlException, OSError, ValueError, KeyError, StopIteration):
        model = call(lambda: clients.workspace.models.get(expected, label="latest"),
                     what=f"read the imported model {expected}")
        return f"{model.name}:{model.version}"

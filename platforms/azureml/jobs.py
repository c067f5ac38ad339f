"""Registry pipeline components submitted as workspace pipeline jobs, and their states read back.

Every component is fetched with label `latest` and called only with the inputs it declares: the
registry's components change over time, and a mismatch is reported by name instead of failing
inside Azure an hour later.
"""

from __future__ import annotations

from typing import Any

from azure.ai.ml.dsl import pipeline
from azure.ai.ml.entities import Component, Job, PipelineJob

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import call
from platforms.base import JobState, PlatformError

SERVERLESS = "serverless"
AZURE_STATES = {
    "NotStarted": JobState.QUEUED, "Queued": JobState.QUEUED, "Preparing": JobState.QUEUED,
    "Provisioning": JobState.QUEUED, "Starting": JobState.QUEUED,
    "Running": JobState.RUNNING, "Finalizing": JobState.RUNNING, "CancelRequested": JobState.RUNNING,
    "Completed": JobState.COMPLETED, "Finished": JobState.COMPLETED,
    "Failed": JobState.FAILED, "NotResponding": JobState.FAILED,
    "Canceled": JobState.CANCELED,
}
TAG_KIND = "fmbot.kind"
TAG_OUTPUT = "fmbot.output_name"
TAG_TASK = "fmbot.task"
TAG_BASE = "fmbot.base_model"


def registry_component(clients: AzureClients, name: str) -> Component:
    return call(lambda: clients.registry.components.get(name, label="latest"),
                what=f"read the registry component {name}", scope="registry")


def check_inputs(component: Component, inputs: dict[str, Any], *, optional: dict[str, Any] | None = None) -> dict[str, Any]:
    """`inputs` must all exist on the component; `optional` ones are dropped when it lacks them."""
    declared = set(component.inputs or {})
    missing = sorted(set(inputs) - declared)
    if missing:
        raise PlatformError(f"the registry component {component.name} {component.version} has no input "
                            f"{', '.join(missing)}", hint="The registry changed; update fmbot or pin an older component")
    return {**{k: v for k, v in (optional or {}).items() if k in declared and v is not None}, **inputs}


def refuse_enum(component: Component, name: str, value: str) -> None:
    """The SDK checks required inputs but not enums; Azure refuses a value outside one after submission."""
    allowed = getattr((component.inputs or {}).get(name), "enum", None)
    if allowed and value not in [str(a) for a in allowed]:
        raise PlatformError(f"the registry component {component.name} {component.version} takes {name} "
                            f"{', '.join(map(str, allowed))}, not {value}")


def submit(clients: AzureClients, component: Component, inputs: dict[str, Any], *, display_name: str,
           outputs: dict[str, str], tags: dict[str, str], compute: str | None = None,
           identity: Any = None) -> Job:
    """One pipeline job around one registry component, with `outputs` (job output → node output) promoted."""

    @pipeline(name=display_name, display_name=display_name)
    def wrapper() -> dict[str, Any]:
        node = component(**inputs)
        return {job_output: node.outputs[node_output] for job_output, node_output in outputs.items()}

    job: PipelineJob = wrapper()
    job.tags = tags
    if identity is not None:
        job.identity = identity
    job.settings.force_rerun = True
    job.settings.continue_on_step_failure = False
    if compute and compute != SERVERLESS:
        job.settings.default_compute = compute
    return validate_and_create(clients, job, display_name)


def validate_and_create(clients: AzureClients, job: PipelineJob, display_name: str) -> Job:
    """`jobs.validate` first (the SDK checks every node against its component, required inputs
    included), so a refusal names the input instead of coming back from Azure as a failed job."""
    result = call(lambda: clients.workspace.jobs.validate(job), what=f"validate the {display_name} job")
    if not result.passed:
        problems = "; ".join(f"{path}: {message}" for path, message in sorted(result.error_messages.items()))
        raise PlatformError(f"Azure ML would refuse the {display_name} job: {problems}",
                            hint="Map the missing columns or settings and submit again")
    return call(lambda: clients.workspace.jobs.create_or_update(job, experiment_name="fmbot"),
                what=f"submit the {display_name} job")


def get_job(clients: AzureClients, name: str) -> Job:
    return call(lambda: clients.workspace.jobs.get(name), what=f"read job {name}")


def status_text(job: Job) -> str:
    """The SDK hands back a JobStatus enum for known states and the raw string for new ones."""
    return str(getattr(job.status, "value", job.status))


def state_of(job: Job) -> JobState:
    return AZURE_STATES.get(status_text(job), JobState.RUNNING)

"""Evaluation with the registry's `model_evaluation_pipeline`, or `model_prediction` + `compute_metrics`.

The single pipeline is preferred while the registry still serves it; newer registries only have
the two command components, chained here into a two-step pipeline. Metrics keep Azure's names,
which fmbot's task table already uses.
"""

from __future__ import annotations

from typing import Any

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.dsl import pipeline
from azure.ai.ml.entities import Job, PipelineJob

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.data import DataUploader, columns_for
from platforms.azureml.errors import AzureNotFound, call
from platforms.base import EvaluateSpec, ModelCard, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import Task

EVALUATION_PIPELINE = "model_evaluation_pipeline"
PREDICTION, METRICS = "model_prediction", "compute_metrics"
AZURE_TASKS = {
    Task.TEXT_CLASSIFICATION: "text-classification",
    Task.TOKEN_CLASSIFICATION: "text-named-entity-recognition",
    Task.QUESTION_ANSWERING: "question-answering",
    Task.SUMMARIZATION: "text-summarization",
    Task.TRANSLATION: "text-translation",
    Task.TEXT_GENERATION: "text-generation",
    Task.CHAT_COMPLETION: "chat-completion",
}
INPUT_KEYS = {
    Task.TEXT_CLASSIFICATION: ("sentence1", "sentence2"),
    Task.TOKEN_CLASSIFICATION: ("tokens",),
    Task.QUESTION_ANSWERING: ("question", "context"),
    Task.SUMMARIZATION: ("document",),
    Task.TRANSLATION: ("source",),
    Task.TEXT_GENERATION: ("prompt", "messages"),
    Task.CHAT_COMPLETION: ("messages", "prompt"),
}
LABEL_KEYS = {
    Task.TEXT_CLASSIFICATION: ("label",), Task.TOKEN_CLASSIFICATION: ("tags",),
    Task.QUESTION_ANSWERING: ("answers", "answer_text"), Task.SUMMARIZATION: ("summary",),
    Task.TRANSLATION: ("target",), Task.TEXT_GENERATION: ("completion",), Task.CHAT_COMPLETION: ("completion",),
}
OUTPUT = "evaluation_result"


def column_inputs(task: Task, columns: dict[str, str]) -> dict[str, str]:
    inputs = {"input_column_names": ",".join(columns[k] for k in INPUT_KEYS[task] if k in columns)}
    label = next((columns[k] for k in LABEL_KEYS[task] if k in columns), None)
    return inputs | ({"label_column_name": label} if label else {})


def submit_evaluation(clients: AzureClients, uploader: DataUploader, spec: EvaluateSpec, card: ModelCard) -> Job:
    if spec.task not in AZURE_TASKS:
        raise PlatformError(f"Azure ML evaluation does not support {spec.task}",
                            hint="Evaluate supports " + ", ".join(AZURE_TASKS))
    mapping = ColumnMapping.build(spec.mapping, spec.task)
    data, uploaded = uploader.inputs({"test_data": spec.test}, mapping, prefix="fmbot-ev")
    common = {"task": AZURE_TASKS[spec.task], "test_data": data["test_data"],
              "mlflow_model": Input(type=AssetTypes.MLFLOW_MODEL, path=card.source),
              **column_inputs(spec.task, columns_for(mapping, uploaded))}
    tags = {jobs.TAG_KIND: "evaluate"}
    instance_type = spec.compute if spec.compute and spec.compute.startswith("Standard_") else (
        card.evaluation_compute[0] if card.evaluation_compute else None)
    cluster = spec.compute if spec.compute and not spec.compute.startswith("Standard_") else None
    try:
        component = jobs.registry_component(clients, EVALUATION_PIPELINE)
    except AzureNotFound:
        return _submit_two_steps(clients, common, cluster, instance_type, spec.batch_size, tags)
    inputs = jobs.check_inputs(component, common, optional={
        "device": "auto", "batch_size": spec.batch_size, **jobs.compute_inputs(component, cluster, instance_type)})
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-evaluate-{spec.task}",
                       outputs={OUTPUT: OUTPUT}, tags=tags, compute=cluster)


def _place(node: Any, cluster: str | None, instance_type: str | None) -> None:
    """A command node runs on the cluster, or serverless on the instance type (the DSL names nodes
    after local variables, so this is a function rather than a loop inside the pipeline)."""
    if cluster:
        node.compute = cluster
    elif instance_type:
        node.resources = {"instance_type": instance_type}


def _submit_two_steps(clients: AzureClients, common: dict[str, Any], cluster: str | None,
                      instance_type: str | None, batch_size: int, tags: dict[str, str]) -> Job:
    prediction = jobs.registry_component(clients, PREDICTION)
    metrics = jobs.registry_component(clients, METRICS)
    predict_inputs = jobs.check_inputs(prediction, common, optional={"device": "auto", "batch_size": batch_size})

    @pipeline(name="fmbot-evaluate", display_name="fmbot-evaluate")
    def two_steps() -> dict[str, Any]:
        predict = prediction(**predict_inputs)
        score = metrics(task=common["task"], ground_truth=predict.outputs.ground_truth,
                        prediction=predict.outputs.predictions)
        _place(predict, cluster, instance_type)
        _place(score, cluster, instance_type)
        return {OUTPUT: score.outputs.evaluation_result}

    job: PipelineJob = two_steps()
    job.tags = tags
    job.settings.force_rerun = True
    return call(lambda: clients.workspace.jobs.create_or_update(job, experiment_name="fmbot"),
                what="submit the evaluation job")

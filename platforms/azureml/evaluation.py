"""Evaluation with the registry's `model_evaluation_pipeline`, or `model_prediction` + `compute_metrics`.

The single pipeline is preferred while the registry still serves it (its last published spec,
0.0.36, is vendored), except for a comparison's members, whose rows only the two steps write; newer
registries only have the two command components, chained here into a two-step pipeline:
predictions (column `predictions`), their probabilities and the ground truth (the label column)
feed `compute_metrics`; the predictions and ground truth are outputs of the pipeline job too, so a
comparison reads its rows back (`predictions.py`). The data is shaped as the evaluation notebooks
shape it: token classification as one string of tokens with a list of tags, question answering as
`context,question` with a flat answer text, a sentence pair as one input string. The metrics asked
for per task are Azure's names (the notebooks' `eval-config.json`), passed as
`evaluation_config_params`, and Azure writes them under the same names.
"""

from __future__ import annotations

import json
from typing import Any

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.dsl import pipeline
from azure.ai.ml.entities import Job, PipelineJob

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.compute import Placement, place
from platforms.azureml.data import DataUploader
from platforms.azureml.errors import AzureNotFound
from platforms.azureml.predictions import ROW_OUTPUTS, row_outputs
from platforms.base import EvaluateSpec, ModelCard, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import Task

EVALUATION_PIPELINE = "model_evaluation_pipeline"
PREDICTION, METRICS = "model_prediction", "compute_metrics"
PREDICTIONS_COLUMN = "predictions"
AZURE_TASKS = {
    Task.TEXT_CLASSIFICATION: "text-classification",
    Task.TEXT_CLASSIFICATION_MULTILABEL: "text-classification-multilabel",
    Task.TOKEN_CLASSIFICATION: "text-named-entity-recognition",
    Task.QUESTION_ANSWERING: "question-answering",
    Task.SUMMARIZATION: "text-summarization",
    Task.TRANSLATION: "text-translation",
    Task.TEXT_GENERATION: "text-generation",
}
AZURE_METRICS = {
    Task.TEXT_CLASSIFICATION: ["accuracy", "f1_score_macro", "f1_score_micro", "f1_score_weighted",
                               "precision_score_macro", "recall_score_macro", "matthews_correlation"],
    Task.TEXT_CLASSIFICATION_MULTILABEL: ["accuracy", "f1_score_macro", "f1_score_micro", "f1_score_weighted",
                                          "precision_score_macro", "recall_score_macro"],
    Task.TOKEN_CLASSIFICATION: ["accuracy", "f1_score_macro", "f1_score_micro"],
    Task.QUESTION_ANSWERING: ["exact_match", "f1_score"],
    Task.SUMMARIZATION: ["rouge1", "rouge2", "rougeL", "rougeLsum"],
    Task.TRANSLATION: ["bleu_1", "bleu_2", "bleu_3", "bleu_4"],
    Task.TEXT_GENERATION: ["rouge1", "rouge2", "bleu_3", "bleu_4"],
}
OUTPUT = "evaluation_result"


def shape_row(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    """One row in the form the evaluation components read (fmbot's own keys, Azure's shapes)."""
    if task == Task.TOKEN_CLASSIFICATION:
        return {"tokens": " ".join(map(str, row["tokens"])), "tags": str([str(t) for t in row["tags"]])}
    if task == Task.QUESTION_ANSWERING:
        texts = (row.get("answers") or {}).get("text") or [""]
        return {"context": row["context"], "question": row["question"], "answer_text": texts[0]}
    if task == Task.TEXT_CLASSIFICATION_MULTILABEL:
        text = (f"[CLS] {row['sentence1']} [SEP] {row['sentence2']} [SEP]" if row.get("sentence2")
                else row["sentence1"])
        return {"input_string": text, "labels": json.dumps(row["labels"])}
    if task == Task.TEXT_CLASSIFICATION and row.get("sentence2"):
        return {"input_string": f"[CLS] {row['sentence1']} [SEP] {row['sentence2']} [SEP]", "label": row["label"]}
    if task == Task.TEXT_CLASSIFICATION:
        return {"input_string": row["sentence1"], "label": row["label"]}
    return row


def columns(task: Task, mapping: ColumnMapping, uploaded: bool) -> tuple[str, str]:
    """(input_column_names, label_column_name) for the data Azure reads."""
    if uploaded:
        return {
            Task.TEXT_CLASSIFICATION: ("input_string", "label"), Task.TOKEN_CLASSIFICATION: ("tokens", "tags"),
            Task.TEXT_CLASSIFICATION_MULTILABEL: ("input_string", "labels"),
            Task.QUESTION_ANSWERING: ("context,question", "answer_text"), Task.SUMMARIZATION: ("document", "summary"),
            Task.TRANSLATION: ("source", "target"), Task.TEXT_GENERATION: ("prompt", "completion"),
        }[task]
    c = mapping.columns
    if task == Task.QUESTION_ANSWERING:
        if "answer_text" not in c:
            raise PlatformError("Azure's question-answering evaluation reads a flat answer text column",
                                hint="Map answer_text, or give the data as a file so fmbot flattens the answers")
        return f"{c['context']},{c['question']}", c["answer_text"]
    inputs = {Task.TEXT_CLASSIFICATION: ("sentence1", "sentence2"), Task.TOKEN_CLASSIFICATION: ("tokens",),
              Task.TEXT_CLASSIFICATION_MULTILABEL: ("sentence1", "sentence2"),
              Task.SUMMARIZATION: ("document",), Task.TRANSLATION: ("source",), Task.TEXT_GENERATION: ("prompt",)}[task]
    label = {Task.TEXT_CLASSIFICATION: "label", Task.TEXT_CLASSIFICATION_MULTILABEL: "label",
             Task.TOKEN_CLASSIFICATION: "tags", Task.SUMMARIZATION: "summary",
             Task.TRANSLATION: "target", Task.TEXT_GENERATION: "completion"}[task]
    if label not in c:
        raise PlatformError(f"evaluating {task} needs the {label} column mapped")
    return ",".join(c[k] for k in inputs if k in c), c[label]


def refuse_task(task: Task) -> None:
    if task not in AZURE_TASKS:
        raise PlatformError(f"Azure ML's evaluation components do not evaluate {task}",
                            hint="They evaluate " + ", ".join(AZURE_TASKS) + "; evaluate chat models on the local platform")


def submit_evaluation(clients: AzureClients, uploader: DataUploader, spec: EvaluateSpec, card: ModelCard) -> Job:
    refuse_task(spec.task)
    mapping = ColumnMapping.build(spec.mapping, spec.task)
    data, uploaded = uploader.inputs({"test_data": spec.test}, mapping, prefix="fmbot-ev",
                                     shape=lambda row: shape_row(spec.task, row), training=False, rows=spec.rows)
    input_columns, label = columns(spec.task, mapping, uploaded)
    common = {"task": AZURE_TASKS[spec.task], "test_data": data["test_data"],
              "mlflow_model": Input(type=AssetTypes.MLFLOW_MODEL, path=card.source),
              "input_column_names": input_columns, "label_column_name": label, "device": "auto",
              "batch_size": spec.batch_size,
              "evaluation_config_params": json.dumps({"metrics": AZURE_METRICS[spec.task]})}
    placement = place(clients, spec.compute, allowed=card.evaluation_compute,
                      recommended=(card.properties.get("recommended") or {}).get("evaluation", []),
                      purpose="evaluation", gpu=None)
    tags = {jobs.TAG_KIND: "evaluate", jobs.TAG_TASK: spec.task.value}
    if spec.for_comparison:
        return _submit_two_steps(clients, common, placement, tags, label)
    try:
        component = jobs.registry_component(clients, EVALUATION_PIPELINE)
    except AzureNotFound:
        return _submit_two_steps(clients, common, placement, tags, label)
    jobs.refuse_enum(component, "task", common["task"])
    inputs = jobs.check_inputs(component, common, optional={"compute_name": placement.compute,
                                                            "instance_type": placement.size})
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-evaluate-{spec.task}",
                       outputs={OUTPUT: OUTPUT}, tags=tags, compute=placement.cluster)


def _place(node: Any, placement: Placement) -> None:
    """A command node runs on the cluster, or serverless on the size (the DSL names nodes after local
    variables, so this is a function rather than a loop inside the pipeline)."""
    node.compute = placement.compute
    if not placement.cluster:
        node.resources = {"instance_type": placement.size}


def _submit_two_steps(clients: AzureClients, common: dict[str, Any], placement: Placement,
                      tags: dict[str, str], label: str) -> Job:
    prediction = jobs.registry_component(clients, PREDICTION)
    metrics = jobs.registry_component(clients, METRICS)
    jobs.refuse_enum(prediction, "task", common["task"])
    jobs.refuse_enum(metrics, "task", common["task"])
    predict_inputs = jobs.check_inputs(prediction, common)

    @pipeline(name="fmbot-evaluate", display_name="fmbot-evaluate")
    def two_steps() -> dict[str, Any]:
        predict = prediction(**predict_inputs)
        score = metrics(task=common["task"], ground_truth=predict.outputs.ground_truth,
                        ground_truth_column_name=label, prediction=predict.outputs.predictions,
                        prediction_column_name=PREDICTIONS_COLUMN,
                        prediction_probabilities=predict.outputs.prediction_probabilities,
                        evaluation_config_params=common["evaluation_config_params"])
        _place(predict, placement)
        _place(score, placement)
        return {OUTPUT: score.outputs.evaluation_result, **{name: predict.outputs[name] for name in ROW_OUTPUTS}}

    job: PipelineJob = two_steps()
    for name, output in row_outputs().items():
        job.outputs[name].path, job.outputs[name].mode = output.path, output.mode
    job.tags = tags
    job.settings.force_rerun = True
    return jobs.validate_and_create(clients, job, "evaluation")

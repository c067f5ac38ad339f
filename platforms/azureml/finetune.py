"""Fine-tuning with the registry's `<task>_pipeline` components.

fmbot's column keys become the components' `*_key` inputs; the model goes in as
`mlflow_model_path` (a registry model) or `huggingface_id` (an `owner/name` id); training,
validation and test data as `uri_file` inputs. Test metrics are not computed by these pipelines
any more, so fmbot evaluates after training with `evaluation.py`.
"""

from __future__ import annotations

from typing import Any

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Job

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.data import DataUploader, columns_for
from platforms.base import FinetuneSpec, ModelCard, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import Task

PIPELINES = {
    Task.TEXT_CLASSIFICATION: "text_classification_pipeline",
    Task.TOKEN_CLASSIFICATION: "token_classification_pipeline",
    Task.QUESTION_ANSWERING: "question_answering_pipeline",
    Task.SUMMARIZATION: "summarization_pipeline",
    Task.TRANSLATION: "translation_pipeline",
}
TASK_NAMES = {
    Task.TEXT_CLASSIFICATION: "SingleLabelClassification",
    Task.TOKEN_CLASSIFICATION: "NamedEntityRecognition",
    Task.QUESTION_ANSWERING: "QuestionAnswering",
    Task.SUMMARIZATION: "Summarization",
    Task.TRANSLATION: "Translation",
}
# fmbot column key -> component input naming the column.
KEY_INPUTS = {
    Task.TEXT_CLASSIFICATION: {"sentence1": "sentence1_key", "sentence2": "sentence2_key", "label": "label_key"},
    Task.TOKEN_CLASSIFICATION: {"tokens": "token_key", "tags": "tag_key"},
    Task.QUESTION_ANSWERING: {"question": "question_key", "context": "context_key", "answers": "answers_key",
                              "answer_start": "answer_start_key", "answer_text": "answer_text_key"},
    Task.SUMMARIZATION: {"document": "document_key", "summary": "summary_key"},
    Task.TRANSLATION: {"source": "source_lang", "target": "target_lang"},
}
DATA_INPUTS = ("train_file_path", "validation_file_path", "test_file_path")
OUTPUT = "trained_model"


def model_input(card: ModelCard | None, model: str) -> dict[str, Any]:
    """A registry model goes in as MLflow; an `owner/name` id not in the registry is pulled from Hugging Face."""
    if card is not None:
        return {"mlflow_model_path": Input(type=AssetTypes.MLFLOW_MODEL, path=card.source)}
    if "/" in model:
        return {"huggingface_id": model}
    raise PlatformError(f'"{model}" is neither a registry model nor a Hugging Face id')


def key_inputs(task: Task, columns: dict[str, str]) -> dict[str, str]:
    return {KEY_INPUTS[task][key]: column for key, column in columns.items() if key in KEY_INPUTS[task]}


def language_keys(spec: FinetuneSpec) -> dict[str, str]:
    """Azure's translation pipeline reads the texts under keys that are the language codes (`en`, `ro`)."""
    if spec.task != Task.TRANSLATION or not (spec.source_lang and spec.target_lang):
        return {}
    return {"source": spec.source_lang, "target": spec.target_lang}


def default_sku(card: ModelCard | None) -> str | None:
    if card is None:
        return None
    recommended = card.properties.get("finetune-recommended-sku") or card.properties.get("tags", {}).get("finetune-recommended-sku")
    if recommended:
        return str(recommended).split(",")[0].strip()
    return card.finetune_compute[0] if card.finetune_compute else None


def submit_finetune(clients: AzureClients, uploader: DataUploader, spec: FinetuneSpec,
                    card: ModelCard | None) -> Job:
    if spec.task not in PIPELINES:
        raise PlatformError(f"Azure ML has no fine-tune pipeline for {spec.task}",
                            hint="Fine-tune supports " + ", ".join(PIPELINES))
    component = jobs.registry_component(clients, PIPELINES[spec.task])
    mapping = ColumnMapping.build(spec.mapping, spec.task)
    data, uploaded = uploader.inputs(
        dict(zip(DATA_INPUTS, (spec.train, spec.validation, spec.test))), mapping,
        split={"validation_file_path": spec.split.validation, "test_file_path": spec.split.test},
        seed=spec.hyperparameters.seed, prefix="fmbot-ft", rename=language_keys(spec),
    )
    columns = columns_for(mapping, uploaded) | (language_keys(spec) if uploaded else {})
    instance_type = spec.compute if spec.compute and spec.compute.startswith("Standard_") else default_sku(card)
    cluster = spec.compute if spec.compute and not spec.compute.startswith("Standard_") else None
    hyper = spec.hyperparameters
    inputs = jobs.check_inputs(component, {
        **model_input(card, spec.model),
        **key_inputs(spec.task, columns),
        **data,
    }, optional={
        "task_name": TASK_NAMES[spec.task],
        "num_train_epochs": hyper.epochs,
        "learning_rate": hyper.learning_rate,
        "per_device_train_batch_size": hyper.batch_size,
        "per_device_eval_batch_size": hyper.batch_size,
        "max_seq_length": hyper.max_length,
        "num_nodes_finetune": spec.instances if spec.instances > 1 else None,
        **jobs.compute_inputs(component, cluster, instance_type),
    })
    output_name = spec.output_name or f"{(card.name if card else spec.model.replace('/', '-'))}-ft"
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-finetune-{spec.task}",
                       outputs={OUTPUT: "mlflow_model_folder"}, compute=cluster,
                       tags={jobs.TAG_KIND: "finetune", jobs.TAG_OUTPUT: output_name})

"""Fine-tuning with the registry's `<task>_pipeline` components (azureml-assets
`finetune_acft_hf_nlp/components/pipeline_components/<task>/spec.yaml`).

The inputs are filled as the foundation-model notebooks fill them: the model as `mlflow_model_path`
(a registry or workspace model) or `huggingface_id` (an `owner/name` id); data as `uri_file`
inputs; every column-key input the spec requires; the model's `model_specific_defaults` (LoRA,
DeepSpeed, ORT, ...) under the user's own settings; `number_of_gpu_to_use_finetuning` from the
chosen size; `num_nodes_finetune` for multi-node. Question answering takes an `answers` object
with nested keys (SQuAD: `text`, `answer_start`); translation reads the texts under keys that are
the language codes themselves; chat completion reads a `messages` column.
"""

from __future__ import annotations

import re
from typing import Any

from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Component, Job

from platforms.azureml import jobs
from platforms.azureml.clients import AzureClients
from platforms.azureml.compute import Placement, place
from platforms.azureml.data import DataUploader
from platforms.base import FinetuneSpec, ModelCard, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import Task

PIPELINES = {
    Task.TEXT_CLASSIFICATION: "text_classification_pipeline",
    Task.TOKEN_CLASSIFICATION: "token_classification_pipeline",
    Task.QUESTION_ANSWERING: "question_answering_pipeline",
    Task.SUMMARIZATION: "summarization_pipeline",
    Task.TRANSLATION: "translation_pipeline",
    Task.TEXT_GENERATION: "text_generation_pipeline",
    Task.CHAT_COMPLETION: "chat_completion_pipeline",
}
# fmbot column key -> the component input naming that column.
KEY_INPUTS = {
    Task.TEXT_CLASSIFICATION: {"sentence1": "sentence1_key", "sentence2": "sentence2_key", "label": "label_key"},
    Task.TOKEN_CLASSIFICATION: {"tokens": "token_key", "tags": "tag_key"},
    Task.QUESTION_ANSWERING: {"question": "question_key", "context": "context_key", "answers": "answers_key"},
    Task.SUMMARIZATION: {"document": "document_key", "summary": "summary_key"},
    Task.TEXT_GENERATION: {"prompt": "text_key", "completion": "ground_truth_key"},
    Task.TRANSLATION: {},
    Task.CHAT_COMPLETION: {},
}
# SQuAD's nested keys inside `answers`: what fmbot writes, and what a registered asset must use.
ANSWER_TEXT, ANSWER_START = "text", "answer_start"
DATA_INPUTS = ("train_file_path", "validation_file_path", "test_file_path")
OUTPUT = "trained_model"
LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][A-Za-z]{2,4}){0,2}$")


def model_input(card: ModelCard | None, model: str) -> dict[str, Any]:
    """A registry or workspace model goes in as MLflow; an `owner/name` id not in the registry is pulled from Hugging Face."""
    if card is not None:
        return {"mlflow_model_path": Input(type=AssetTypes.MLFLOW_MODEL, path=card.source)}
    if "/" in model:
        return {"huggingface_id": model}
    raise PlatformError(f'"{model}" is neither a registry model nor a Hugging Face id')


def language_codes(spec: FinetuneSpec) -> dict[str, str]:
    """Translation needs both codes, as the model's tokenizer spells them (`en`, `ro`, `en_XX`)."""
    codes = {"source": spec.source_lang, "target": spec.target_lang}
    for side, code in codes.items():
        if not code:
            raise PlatformError(f"Azure's translation pipeline needs the {side} language code",
                                hint="Give --source-lang and --target-lang (e.g. en, ro), as the model's tokenizer names them")
        if not LANGUAGE_CODE.fullmatch(code):
            raise PlatformError(f'"{code}" is not a language code',
                                hint="Use the code the model's tokenizer knows, e.g. en, ro, de or en_XX")
    if codes["source"] == codes["target"]:
        raise PlatformError("the source and target languages are the same", hint="Give two different language codes")
    return {k: str(v) for k, v in codes.items()}


def column_keys(spec: FinetuneSpec, mapping: ColumnMapping, uploaded: bool) -> dict[str, str]:
    """The component's `*_key` inputs: fmbot's own keys for data it wrote, the user's columns otherwise."""
    task = spec.task
    columns = {key: key for key in mapping.columns} if uploaded else dict(mapping.columns)
    if task == Task.QUESTION_ANSWERING:
        if not uploaded and "answers" not in columns:
            raise PlatformError("a registered data asset cannot be converted to the nested answers Azure reads",
                                hint=f'Map "answers" to a column holding {{"{ANSWER_TEXT}": [...], "{ANSWER_START}": [...]}}, '
                                     "or give the data as a file so fmbot converts answer_text/answer_start itself")
        columns["answers"] = "answers" if uploaded else columns["answers"]
        keys = {KEY_INPUTS[task][k]: columns[k] for k in ("question", "context", "answers")}
        return keys | {"answer_text_key": ANSWER_TEXT, "answer_start_key": ANSWER_START}
    if task == Task.TRANSLATION:
        codes = language_codes(spec)
        if not uploaded and (columns.get("source"), columns.get("target")) != (codes["source"], codes["target"]):
            raise PlatformError("Azure's translation pipeline reads the texts under keys named by the language codes",
                                hint=f'The asset\'s columns must be "{codes["source"]}" and "{codes["target"]}", '
                                     "or give the data as a file so fmbot renames them")
        return {"source_lang": codes["source"], "target_lang": codes["target"]}
    if task == Task.CHAT_COMPLETION and columns.get("messages") != "messages":
        raise PlatformError("Azure's chat-completion pipeline reads conversations from a \"messages\" column",
                            hint="Map messages (a list of {role, content}) or give the data as a file")
    if task == Task.TEXT_GENERATION and "prompt" not in columns:
        raise PlatformError("Azure's text-generation pipeline needs a prompt column (text_key)",
                            hint="Map prompt (and completion); conversations go to chat-completion")
    return {KEY_INPUTS[task][k]: v for k, v in columns.items() if k in KEY_INPUTS[task]}


def model_defaults(component: Component, card: ModelCard | None) -> dict[str, Any]:
    """The model's `model_specific_defaults`, kept to the inputs the component declares, typed as it declares them."""
    declared = component.inputs or {}
    defaults = (card.properties.get("model_specific_defaults") if card else None) or {}
    typed = {}
    for name, value in defaults.items():
        kind = getattr(declared.get(name), "type", None)
        if kind is None:
            continue
        typed[name] = (int(value) if kind == "integer" else float(value) if kind == "number"
                       else str(value).lower() if isinstance(value, bool) else str(value))
    return typed


def placement_inputs(component: Component, placement: Placement) -> dict[str, Any]:
    """Every step placed explicitly: all `compute_*` on the cluster, or serverless with a size for each."""
    declared = component.inputs or {}
    if placement.cluster:
        return {k: placement.cluster for k in declared if k.startswith("compute_")}
    sizes = {"instance_type_model_import": placement.cpu_size, "instance_type_preprocess": placement.cpu_size,
             "instance_type_finetune": placement.size, "instance_type_model_evaluation": placement.size}
    return {k: v for k, v in sizes.items() if k in declared} | {
        k: jobs.SERVERLESS for k in declared if k.startswith("compute_")}


def submit_finetune(clients: AzureClients, uploader: DataUploader, spec: FinetuneSpec,
                    card: ModelCard | None) -> Job:
    if spec.task not in PIPELINES:
        raise PlatformError(f"Azure ML has no fine-tune pipeline for {spec.task}",
                            hint="Fine-tune supports " + ", ".join(PIPELINES))
    if card is not None and card.finetune_tasks and spec.task not in card.finetune_tasks:
        raise PlatformError(f"{card.ref} cannot be fine-tuned for {spec.task} on Azure ML",
                            hint=f"The registry lists its fine-tuning tasks as {', '.join(card.finetune_tasks)}")
    component = jobs.registry_component(clients, PIPELINES[spec.task])
    mapping = ColumnMapping.build(spec.mapping, spec.task)
    rename = ({"source": spec.source_lang, "target": spec.target_lang}
              if spec.task == Task.TRANSLATION and spec.source_lang and spec.target_lang else None)
    if spec.task == Task.TRANSLATION:
        language_codes(spec)
    data, uploaded = uploader.inputs(
        dict(zip(DATA_INPUTS, (spec.train, spec.validation, spec.test))), mapping,
        split={"validation_file_path": spec.split.validation, "test_file_path": spec.split.test},
        seed=spec.hyperparameters.seed, prefix="fmbot-ft", rename=rename, rows=spec.rows,
    )
    placement = place(clients, spec.compute, allowed=card.finetune_compute if card else [],
                      recommended=(card.properties.get("recommended") or {}).get("finetune", []) if card else [],
                      purpose="fine-tuning", gpu=True)
    hyper = spec.hyperparameters
    settings = {
        "num_train_epochs": hyper.epochs, "learning_rate": hyper.learning_rate,
        "per_device_train_batch_size": hyper.batch_size, "per_device_eval_batch_size": hyper.batch_size,
        "max_seq_length": hyper.max_length, "seed": hyper.seed,
    }
    inputs = jobs.check_inputs(component, {
        **model_input(card, spec.model),
        **column_keys(spec, mapping, uploaded),
        **data,
    }, optional={
        **model_defaults(component, card),
        **settings,
        **({"apply_lora": "true"} if hyper.lora else {}),
        "number_of_gpu_to_use_finetuning": max(placement.gpus, 1),
        "num_nodes_finetune": spec.instances,
        **placement_inputs(component, placement),
    })
    output_name = spec.output_name or f"{(card.name if card else spec.model.replace('/', '-'))}-ft"
    base = card.ref if card else spec.model
    return jobs.submit(clients, component, inputs, display_name=f"fmbot-finetune-{spec.task}",
                       outputs={OUTPUT: "mlflow_model_folder"}, compute=placement.cluster,
                       tags={jobs.TAG_KIND: "finetune", jobs.TAG_OUTPUT: output_name, jobs.TAG_TASK: spec.task.value,
                             jobs.TAG_BASE: base})

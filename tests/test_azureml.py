"""The Azure ML platform driven through the real azure-ai-ml SDK against a stand-in serving Azure's
published contracts (tests/data/azure/, see SOURCES.md), with Azurite for blob uploads and a real
MLflow server for run metrics.

Tests go handler → RQ queue → worker → azure-ai-ml → stand-in where a command has a handler, and
assert on the HTTP requests the SDK sent and on what the stand-in refused; every shape asserted on
is one a vendored file defines.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import pytest
from redis import Redis

from handlers.deploy import DeployRequest, delete_endpoint, endpoint_for_owner, rotate_endpoint_key, start_deploy
from handlers.errors import UserError
from handlers.evaluate import EvaluateRequest, start_evaluation
from handlers.finetune import FinetuneRequest, start_finetune
from handlers.imports import ImportRequest, start_import
from platforms.azureml import AzureMLPlatform, errors
from platforms.azureml.catalog import CATALOG_KEY
from platforms.base import DataRef, DeploySpec, EvaluateSpec, FinetuneSpec, ImportSpec, JobState, PlatformError
from platforms.datasets import ColumnMapping
from platforms.tasks import Task
from tests.azure_fixtures import *  # noqa: F403  (fixtures)
from tests.azure_fixtures import drain, log_run, make_platform
from tests.azure_services import AzureServices
from tests.azure_standin import BLOB_CONTAINER, SUBSCRIPTION, WORKSPACE_PATH, AzureStandIn, load_spec
from tests.helpers import DATA
from workers.runtime import Runtime

BERT, GPT2, PHI4 = "bert-base-uncased", "gpt2", "Phi-4"
RETIRED = {"standard_nc6s_v3", "standard_nc12s_v3", "standard_nc24s_v3", "standard_nc24rs_v3"}
ASSET = DataRef(path="azureml:train-data:1", name="azureml:train-data:1")


def node_of(body: dict) -> dict:
    (node,) = body["properties"]["jobs"].values()
    return node


def literal(node: dict, name: str) -> str:
    return node["inputs"][name]["value"]


def required_inputs(component: str) -> set[str]:
    """What the vendored spec requires: not optional and no default."""
    spec = load_spec("components", component)
    return {k for k, v in spec["inputs"].items() if not v.get("optional") and "default" not in v}


def file_ref(name: str) -> DataRef:
    return DataRef(path=str(DATA / name), name=name)


# ---------------------------------------------------------------------------- catalog and cards


def test_catalog_reads_both_registry_layouts_and_refreshes_only_changed_models(
        azure: AzureStandIn, platform: AzureMLPlatform, redis: Redis) -> None:
    cards = {c.name: c for c in platform.list_models()}
    assert set(cards) == {BERT, GPT2, PHI4}
    for ref in (f"{BERT}:18", f"{BERT}:19"):  # tags+properties layout, system_metadata layout
        bert = platform.get_model(ref)
        assert bert.tasks == [Task.FILL_MASK], ref
        assert bert.finetune_tasks == [Task.TEXT_CLASSIFICATION, Task.QUESTION_ANSWERING], ref
        assert bert.license == "apache-2.0" and bert.shared_quota and not bert.serverless, ref
        assert bert.inference_compute[0] == "Standard_DS3_v2" and "Standard_NC24ads_A100_v4" in bert.finetune_compute
        assert bert.properties["recommended"]["evaluation"][0] == "Standard_DS4_v2", ref
        assert bert.properties["model_specific_defaults"] == {"apply_deepspeed": "true", "apply_lora": "true",
                                                              "apply_ort": "true"}, ref
    for ref in (f"{PHI4}:7", f"{PHI4}:8"):
        phi = platform.get_model(ref)
        assert phi.serverless and phi.tasks == [Task.CHAT_COMPLETION] and phi.license == "MIT", ref
    assert platform.get_model(f"{GPT2}:17").finetune_tasks == [Task.TEXT_CLASSIFICATION, Task.TEXT_GENERATION]
    assert json.loads(redis.get(CATALOG_KEY))["cards"][0]["name"] == BERT

    azure.requests.clear()
    azure.add_model(GPT2, "system_metadata", version="20")
    platform.catalog.refresh()
    reads = [r.path.rsplit("/", 3)[-3:] for r in azure.calls("GET", "/versions/")]
    assert reads == [[GPT2, "versions", "20"]], "only the model whose latest version changed is read again"


def cli_on_azure(azure: AzureStandIn, redis_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`fmbot` as a user runs it against the workspace the stand-in serves."""
    from bot.cli import main

    for name, value in {**azure.environment(), "FMBOT_PLATFORM": "azureml", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                        "AZURE_RESOURCE_GROUP": "rg", "AZUREML_WORKSPACE": "demo_workspace1",
                        "REDIS_URL": redis_server.url, "FMBOT_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    return main


def test_card_shows_serverless_and_fine_tuning_tasks_through_the_cli(
        azure: AzureStandIn, redis_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    main = cli_on_azure(azure, redis_server, tmp_path, monkeypatch)
    assert main(["card", PHI4, "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["serverless"] and card["finetune_tasks"] == ["chat-completion"]


# ---------------------------------------------------------------------------- fine-tune


FINETUNE_CASES = [
    (Task.TEXT_CLASSIFICATION, BERT, "sst2_small_validation.jsonl", {"sentence1": "input_string", "label": "label_string"}),
    (Task.TOKEN_CLASSIFICATION, "dslim/bert-base-NER", "conll_sample.json", {"tokens": "words", "tags": "ner"}),
    (Task.QUESTION_ANSWERING, BERT, "squad_sample.json", {"question": "question", "context": "context",
                                                           "answers": "answers"}),
    (Task.SUMMARIZATION, "google-t5/t5-small", "xsum_sample.json", {"document": "document", "summary": "summary"}),
    (Task.TRANSLATION, "google-t5/t5-small", "wmt_en_ro_train.json", {"source": "translation.en",
                                                                      "target": "translation.ro"}),
    (Task.TEXT_GENERATION, GPT2, "xsum_sample.json", {"prompt": "document", "completion": "summary"}),
    (Task.CHAT_COMPLETION, PHI4, "sft_chat.jsonl", {"messages": "messages"}),
]


@pytest.mark.parametrize(("task", "model", "data", "mapping"), FINETUNE_CASES, ids=[c[0].value for c in FINETUNE_CASES])
def test_finetune_every_task_through_handler_and_worker(
        azure: AzureStandIn, services: AzureServices, worker_runtime: tuple[Runtime, object], task: Task,
        model: str, data: str, mapping: dict[str, str]) -> None:
    services.require("azurite")
    rt, _ = worker_runtime
    record = start_finetune(rt, FinetuneRequest(spec=FinetuneSpec(
        model=model, task=task, train=file_ref(data), mapping=mapping,
        source_lang="en" if task == Task.TRANSLATION else None, target_lang="ro" if task == Task.TRANSLATION else None,
        hyperparameters={"epochs": 1, "lora": task in (Task.TEXT_GENERATION, Task.CHAT_COMPLETION)}),
        requester="U1"))
    drain(rt)

    external_id = rt.ledger.get(record.id).external_id
    assert external_id, azure.refusals()
    node = node_of(azure.job_body(external_id))
    component = node["componentId"].split("/")[-3]
    assert component == f"{task.value.replace('-', '_')}_pipeline"
    assert required_inputs(component) <= set(node["inputs"]), "every input the spec requires is sent"
    if "/" in model:
        assert literal(node, "huggingface_id") == model, "a Hugging Face id outside the catalog"
    else:
        assert node["inputs"]["mlflow_model_path"]["job_input_type"] == "mlflow_model"
    sizes = {k: literal(node, k) for k in node["inputs"] if k.startswith("instance_type")}
    assert set(sizes) == {"instance_type_model_import", "instance_type_preprocess", "instance_type_finetune",
                          "instance_type_model_evaluation"}, "every step named, no component default left"
    assert not {s.lower() for s in sizes.values()} & RETIRED
    assert sizes["instance_type_model_import"] == sizes["instance_type_preprocess"] == "Standard_DS12_v2", "CPU steps"
    gpu = sizes["instance_type_finetune"]
    assert literal(node, "number_of_gpu_to_use_finetuning") == ("4" if gpu.startswith("Standard_NC96") else "1")
    assert literal(node, "num_train_epochs") == "1"
    assert "/data/fmbot-ft-train-file-path-" in node["inputs"]["train_file_path"]["uri"]
    if task == Task.QUESTION_ANSWERING:
        assert [literal(node, k) for k in ("answers_key", "answer_text_key", "answer_start_key")] == [
            "answers", "text", "answer_start"]
    if task == Task.TRANSLATION:
        assert (literal(node, "source_lang"), literal(node, "target_lang")) == ("en", "ro")
    if task in (Task.TEXT_GENERATION, Task.CHAT_COMPLETION):
        assert literal(node, "apply_lora") == "true"
    if model == BERT:
        assert (literal(node, "apply_deepspeed"), literal(node, "apply_ort")) == ("true", "true"), \
            "the model's model_specific_defaults"
    assert services.proxy.hosts, "the data went to blob storage (Azurite) through Azure's own URLs"


def uploaded_text(services: AzureServices, pattern: str) -> str:
    """What the SDK last uploaded to the workspace's datastore (Azurite, shared by the session's
    tests) for a file named like `pattern`: fmbot deletes its local copy once it is there."""
    client = services.blob_service()
    found = [(blob.last_modified, container.name, blob.name) for container in client.list_containers()
             for blob in client.get_container_client(container.name).list_blobs()
             if fnmatch.fnmatch(Path(blob.name).name, pattern)]
    assert found, f"nothing named {pattern} was uploaded"
    _, container, name = max(found)
    return client.get_blob_client(container, name).download_blob().readall().decode()


def test_question_answering_flat_answers_are_converted_and_refused_for_assets(
        azure: AzureStandIn, services: AzureServices, platform: AzureMLPlatform, tmp_path: Path) -> None:
    services.require("azurite")
    flat = tmp_path / "flat.jsonl"
    flat.write_text(json.dumps({"q": "Who?", "c": "Ada wrote it.", "t": "Ada", "s": 0}) + "\n")
    mapping = {"question": "q", "context": "c", "answer_text": "t", "answer_start": "s"}
    outcome = platform.run_finetune(FinetuneSpec(model=BERT, task=Task.QUESTION_ANSWERING,
                                                 train=DataRef(path=str(flat), name="flat.jsonl"), mapping=mapping),
                                    lambda progress: None)
    node = node_of(azure.job_body(outcome.external_id))
    uploaded = uploaded_text(services, "fmbot-ft-train-file-path-*.jsonl")
    assert not list((tmp_path / "azureml").glob("*.jsonl")), "the local copy is deleted once it is uploaded"
    assert json.loads(uploaded)["answers"] == {"text": ["Ada"], "answer_start": [0]}, "nested as SQuAD nests it"
    assert literal(node, "answers_key") == "answers"

    with pytest.raises(PlatformError, match="registered data asset cannot be converted"):
        platform.run_finetune(FinetuneSpec(model=BERT, task=Task.QUESTION_ANSWERING, train=ASSET, mapping=mapping),
                              lambda progress: None)


def test_finetune_refusals_name_what_is_wrong(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    def attempt(**changes) -> str:
        spec = {"model": BERT, "task": Task.TEXT_CLASSIFICATION, "train": ASSET,
                "mapping": {"sentence1": "text", "label": "label"}} | changes
        with pytest.raises(PlatformError) as failure:
            platform.run_finetune(FinetuneSpec(**spec), lambda progress: None)
        return str(failure.value)

    assert "retired" in attempt(compute="Standard_NC24s_v3")
    assert "not offered" in attempt(compute="Standard_ND40rs_v2")
    assert "cannot be fine-tuned for summarization" in attempt(task=Task.SUMMARIZATION,
                                                               mapping={"document": "d", "summary": "s"})
    assert "language code" in attempt(model="google-t5/t5-small", task=Task.TRANSLATION, mapping={"source": "en", "target": "ro"})
    assert '"ro" and "de"' in attempt(model="google-t5/t5-small", task=Task.TRANSLATION, source_lang="ro",
                                      target_lang="de", mapping={"source": "en", "target": "ro"})
    # A newer component that requires an input fmbot does not know: jobs.validate names it, nothing is submitted.
    spec = load_spec("components", "text_classification_pipeline")
    spec["inputs"]["label_names_key"] = {"type": "string", "optional": False}
    azure.add_component(spec)
    assert "label_names_key" in attempt()
    assert not azure.calls("PUT", "/jobs/")


def test_multi_node_on_a_cluster_takes_gpus_from_its_size(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    spec = FinetuneSpec(model=BERT, task=Task.TEXT_CLASSIFICATION, train=ASSET, compute="gpu-cluster", instances=2,
                        mapping={"sentence1": "text", "label": "label"})
    node = node_of(azure.job_body(platform.run_finetune(spec, lambda progress: None).external_id))
    assert {k: literal(node, k) for k in node["inputs"] if k.startswith("compute_")} == dict.fromkeys(
        ("compute_model_import", "compute_preprocess", "compute_finetune", "compute_model_evaluation"), "gpu-cluster")
    assert (literal(node, "num_nodes_finetune"), literal(node, "number_of_gpu_to_use_finetuning")) == ("2", "1")


# ---------------------------------------------------------------------------- register → evaluate → deploy


def test_finetuned_model_is_registered_once_tagged_evaluated_and_deployed(
        azure: AzureStandIn, services: AzureServices, worker_runtime: tuple[Runtime, object]) -> None:
    from workers.jobs import poll_job

    services.require("mlflow")
    rt, _ = worker_runtime
    record = start_finetune(rt, FinetuneRequest(spec=FinetuneSpec(
        model=BERT, task=Task.TEXT_CLASSIFICATION, train=ASSET, mapping={"sentence1": "text", "label": "label"}),
        requester="U1"))
    drain(rt)
    external_id = rt.ledger.get(record.id).external_id
    log_run(services, external_id, {"train_loss": 0.31, "eval_accuracy": 0.88})
    log_run(services, "someone-elses-job", {"train_loss": 9.9})
    azure.set_job(external_id, "Completed")
    done = poll_job(record.id)
    assert done["state"] == "completed" and done["metrics"] == {"eval_accuracy": 0.88, "train_loss": 0.31}
    rt.platform.job_status(external_id)  # a late, repeated poll
    registrations = azure.calls("PUT", f"/models/{BERT}-ft/versions/")
    assert len(registrations) == 1, "registered once"
    tags = registrations[0].body["properties"]["tags"]
    assert tags["task"] == "text-classification" and "Standard_DS3_v2" in tags["inference_compute_allow_list"]
    finetuned = done["output_model"]

    evaluation = start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(
        model=finetuned, task=Task.TEXT_CLASSIFICATION, test=DataRef(path="azureml:test-data:1", name="test"),
        mapping={"sentence1": "text", "label": "label"}), requester="U1"))
    drain(rt)
    node = node_of(azure.job_body(rt.ledger.get(evaluation.id).external_id))
    assert node["inputs"]["mlflow_model"]["uri"].endswith(f"/models/{BERT}-ft/versions/1")
    assert literal(node, "instance_type") == "Standard_DS4_v2", "the base model's first evaluation size"

    deploy = start_deploy(rt, DeployRequest(spec=DeploySpec(model=finetuned, endpoint="bert-ft-ep"), requester="U1"))
    drain(rt)
    assert rt.ledger.get(deploy.id).state == "completed", azure.refusals()
    (deployment,) = azure.calls("PUT", "/onlineEndpoints/bert-ft-ep/deployments/default")
    assert deployment.body["properties"]["instanceType"] == "Standard_DS3_v2"
    assert deployment.body["properties"]["model"].endswith(f"/models/{BERT}-ft/versions/1")
    assert endpoint_for_owner(rt, "bert-ft-ep", "U1").key.get_secret_value() == "standin-primary-key"
    with pytest.raises(UserError, match="someone else"):
        endpoint_for_owner(rt, "bert-ft-ep", "U2")
    with pytest.raises(UserError, match="someone else"):
        rotate_endpoint_key(rt, "bert-ft-ep", "U2")
    rotated = rotate_endpoint_key(rt, "bert-ft-ep", "U1").key.get_secret_value()
    (regenerate,) = azure.calls("POST", "/onlineEndpoints/bert-ft-ep/regenerateKeys")
    assert regenerate.body["keyType"] == "Primary" and not azure.refusals()
    assert rotated.startswith("standin-primary-") and rotated != "standin-primary-key"
    assert endpoint_for_owner(rt, "bert-ft-ep", "U1").key.get_secret_value() == rotated, "Azure keeps it, fmbot reads it"
    delete_endpoint(rt, "bert-ft-ep", "U1")
    assert azure.calls("DELETE", "/onlineEndpoints/bert-ft-ep")


# ---------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(("task", "data", "mapping", "row", "columns"), [
    (Task.TOKEN_CLASSIFICATION, "conll_sample.json", {"tokens": "words", "tags": "ner"},
     {"tokens": "CHICAGO AT ATLANTA", "tags": "['B-ORG', 'O', 'B-LOC']"}, ("tokens", "tags")),
    (Task.QUESTION_ANSWERING, "squad_sample.json", {"question": "question", "context": "context", "answers": "answers"},
     None, ("context,question", "answer_text")),
    (Task.TEXT_CLASSIFICATION, "mrpc_dev.csv", {"sentence1": "sentence1", "sentence2": "sentence2", "label": "label"},
     None, ("input_string", "label")),
    (Task.TEXT_CLASSIFICATION_MULTILABEL, "goemotions_dev_head.tsv", {"sentence1": "text", "label": "labels"},
     {"input_string": "I've never been this sad in my life!", "labels": '["25"]'}, ("input_string", "labels")),
])
def test_evaluation_data_takes_the_shapes_azure_reads(azure: AzureStandIn, services: AzureServices,
                                                      platform: AzureMLPlatform, tmp_path: Path, task: Task,
                                                      data: str, mapping: dict, row: dict | None, columns: tuple) -> None:
    services.require("azurite")
    azure.add_model(BERT, "tags", version="30")
    spec = EvaluateSpec(model=f"{BERT}:30", task=task, test=file_ref(data), mapping=mapping)
    node = node_of(azure.job_body(platform.run_evaluation(spec, lambda progress: None).external_id))
    assert (literal(node, "input_column_names"), literal(node, "label_column_name")) == columns
    assert literal(node, "instance_type") == "Standard_DS4_v2" and literal(node, "compute_name") == "serverless"
    config = json.loads(literal(node, "evaluation_config_params"))
    assert config["metrics"][0] in {"accuracy", "exact_match"}
    rows = [json.loads(line) for line in uploaded_text(services, "fmbot-ev-*.jsonl").splitlines()]
    if row:
        assert row in rows
    if task == Task.QUESTION_ANSWERING:
        assert isinstance(rows[0]["answer_text"], str) and set(rows[0]) == {"context", "question", "answer_text"}
    if task == Task.TEXT_CLASSIFICATION:
        assert rows[0]["input_string"].startswith("[CLS] ") and " [SEP] " in rows[0]["input_string"]
    if task == Task.TEXT_CLASSIFICATION_MULTILABEL:  # the evaluation component's own multi-label task name
        assert literal(node, "task") == "text-classification-multilabel"
        with pytest.raises(PlatformError, match="learns one label per row.*Fine-tune it on the local platform"):
            platform.finetune_card(f"{BERT}:30", task)


def test_evaluation_two_step_path_and_refusals(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    del azure.registry_components["model_evaluation_pipeline"]
    spec = EvaluateSpec(model=f"{BERT}:18", task=Task.TEXT_CLASSIFICATION,
                        test=DataRef(path="azureml:test-data:1", name="t"), mapping={"sentence1": "text", "label": "label"})
    body = azure.job_body(platform.run_evaluation(spec, lambda progress: None).external_id)
    nodes = {n["componentId"].split("/")[-3]: n for n in body["properties"]["jobs"].values()}
    assert set(nodes) == {"model_prediction", "compute_metrics"}
    metrics = nodes["compute_metrics"]
    assert literal(metrics, "prediction_column_name") == "predictions"
    assert literal(metrics, "ground_truth_column_name") == "label"
    assert metrics["inputs"]["prediction_probabilities"]["value"].endswith("outputs.prediction_probabilities}}")
    assert nodes["model_prediction"]["resources"]["instance_type"] == "Standard_DS4_v2"
    with pytest.raises(PlatformError, match="do not evaluate chat-completion"):
        platform.run_evaluation(spec.model_copy(update={"task": Task.CHAT_COMPLETION, "mapping": {"messages": "m"}}),
                                lambda progress: None)


def test_a_catalog_model_is_evaluated_for_a_task_it_fine_tunes_for(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, object]) -> None:
    rt, _ = worker_runtime
    card = rt.platform.get_model(BERT)
    assert Task.TEXT_CLASSIFICATION not in card.tasks and Task.TEXT_CLASSIFICATION in card.finetune_tasks
    record = start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(
        model=BERT, task=Task.TEXT_CLASSIFICATION, mapping={"sentence1": "text", "label": "label"},
        test=DataRef(path="azureml:test-data:1", name="t")), requester="U1"))
    drain(rt)
    done = rt.ledger.get(record.id)
    assert done.state == "running" and done.external_id, (done.error, azure.refusals())
    node = node_of(azure.job_body(done.external_id))
    assert literal(node, "task") == "text-classification"
    assert node["inputs"]["mlflow_model"]["uri"].endswith(f"/models/{BERT}/versions/{card.version}")
    assert not azure.refusals()

    with pytest.raises(PlatformError, match=f"{BERT}:{card.version} does not support summarization") as refused:
        start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(model=BERT, task=Task.SUMMARIZATION, test=ASSET,
                                                               mapping={"document": "d", "summary": "s"}),
                                             requester="U1"))
    assert refused.value.hint == "Its tasks: fill-mask, text-classification, question-answering"
    with pytest.raises(PlatformError, match="evaluation components do not evaluate chat-completion"):
        start_evaluation(rt, EvaluateRequest(spec=EvaluateSpec(model=PHI4, task=Task.CHAT_COMPLETION, test=ASSET,
                                                               mapping={"messages": "m"}), requester="U1"))
    assert [r.id for r in rt.ledger.recent(limit=5)] == [record.id], "refusals queue nothing"


def test_evaluation_metrics_are_read_from_mlflow_under_azures_names(
        azure: AzureStandIn, services: AzureServices, platform: AzureMLPlatform) -> None:
    spec = EvaluateSpec(model=f"{BERT}:18", task=Task.TEXT_CLASSIFICATION,
                        test=DataRef(path="azureml:test-data:1", name="t"), mapping={"sentence1": "text", "label": "label"})
    external_id = platform.run_evaluation(spec, lambda progress: None).external_id
    log_run(services, external_id, {"accuracy": 0.91, "f1_score_macro": 0.9})
    azure.set_job(external_id, "Completed")
    done = platform.job_status(external_id)
    assert (done.state, done.metrics) == (JobState.COMPLETED, {"accuracy": 0.91, "f1_score_macro": 0.9})


# ---------------------------------------------------------------------------- import


def test_import_names_the_model_runs_as_the_user_and_is_fine_tunable_after(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, object]) -> None:
    from workers.jobs import poll_job

    rt, _ = worker_runtime
    record = start_import(rt, ImportRequest(spec=ImportSpec(model_id="microsoft/phi-2", task="text-generation"),
                                            requester="U1"))
    drain(rt)
    external_id = rt.ledger.get(record.id).external_id
    body = azure.job_body(external_id)
    node = node_of(body)
    assert (literal(node, "model_id"), literal(node, "custom_model_name"), literal(node, "task_name")) == (
        "microsoft/phi-2", "microsoft-phi-2", "text-generation")
    assert (literal(node, "compute"), literal(node, "instance_type")) == ("serverless", "Standard_DS12_v2")
    assert body["properties"]["identity"] == {"identityType": "UserIdentity"}, body["properties"].get("identity")
    path = f"{WORKSPACE_PATH}/models/microsoft-phi-2/versions/1"
    azure.resources[path.lower()] = {"id": path, "name": "1", "properties": {
        "modelType": "mlflow_model", "tags": {}, "properties": {}, "flavors": {},
        "modelUri": f"azureml://jobs/{external_id}/outputs/mlflow_model_folder"}}
    azure.set_job(external_id, "Completed")
    assert poll_job(record.id)["output_model"] == "microsoft-phi-2:1"
    card = rt.platform.finetune_card("microsoft-phi-2:1", Task.TEXT_GENERATION)
    assert card.tasks == [Task.TEXT_GENERATION] and card.source == "azureml:microsoft-phi-2:1"
    assert not card.inference_compute, "Azure lists no inference sizes for an imported model"

    with pytest.raises(PlatformError, match="microsoft-phi-2:1 lists no inference sizes") as refused:
        start_deploy(rt, DeployRequest(spec=DeploySpec(model="microsoft-phi-2:1", endpoint="phi2-ep"), requester="U1"))
    assert refused.value.hint.startswith("Give --compute SIZE") and "Standard_" in refused.value.hint
    assert [r.id for r in rt.ledger.recent(limit=5)] == [record.id], "refused before queueing"
    deploy = start_deploy(rt, DeployRequest(spec=DeploySpec(model="microsoft-phi-2:1", endpoint="phi2-ep",
                                                            compute="Standard_DS3_v2"), requester="U1"))
    drain(rt)
    assert rt.ledger.get(deploy.id).state == "completed", (rt.ledger.get(deploy.id).error, azure.refusals())
    (deployment,) = azure.calls("PUT", "/onlineEndpoints/phi2-ep/deployments/default")
    assert deployment.body["properties"]["instanceType"] == "Standard_DS3_v2"
    with pytest.raises(PlatformError, match="Standard_NC6s_v3 cannot serve"):
        start_deploy(rt, DeployRequest(spec=DeploySpec(model="microsoft-phi-2:1", endpoint="phi2-b",
                                                       compute="Standard_NC6s_v3"), requester="U1"))

    from platforms.azureml import jobs

    component = jobs.registry_component(rt.platform.clients, "import_model")
    with pytest.raises(PlatformError, match="takes task_name"):
        jobs.refuse_enum(component, "task_name", "text2image")


# ---------------------------------------------------------------------------- serverless


def test_serverless_only_for_maas_models_in_one_polled_request(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    azure.lro_polls = 3
    endpoint = platform.deploy(DeploySpec(model=PHI4, endpoint="phi-api", serverless=True, content_filtering=False,
                                          owner="U1"))
    (create,) = azure.calls("PUT", "/serverlessEndpoints/phi-api")
    assert create.body["properties"] == {"modelSettings": {"modelId": f"azureml://registries/azureml/models/{PHI4}"},
                                         "authMode": "Key", "contentSafety": {"contentSafetyStatus": "Disabled"}}
    assert len(azure.calls("GET", "/operations/")) >= 3, "polled until Azure said Succeeded"
    assert not azure.calls("PUT", "/marketplaceSubscriptions/"), "Microsoft's own registry needs no subscription"
    assert endpoint.url == "https://phi-api.eastus.models.ai.azure.com" and endpoint.key.get_secret_value()
    assert "phi-api" in [e.name for e in platform.list_endpoints()]
    assert platform.get_endpoint("phi-api").key is None, "looking an endpoint up reads no key"
    assert platform.pick_up_endpoint_key("phi-api").get_secret_value() == "standin-primary-key"
    with pytest.raises(PlatformError, match="cannot rotate the key of serverless endpoint phi-api") as refused:
        platform.rotate_endpoint_key("phi-api")
    assert "Azure ML studio" in refused.value.hint and not azure.calls("POST", "/regenerateKeys")
    platform.delete_endpoint("phi-api")
    assert azure.calls("DELETE", "/serverlessEndpoints/phi-api")

    with pytest.raises(PlatformError, match="does not offer bert-base-uncased"):
        platform.deploy(DeploySpec(model=BERT, endpoint="bert-api", serverless=True))
    assert not azure.calls("PUT", "/serverlessEndpoints/bert-api")


def test_serverless_deploy_of_a_model_not_offered_so_is_refused_before_queueing(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, object], redis_server, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rt, _ = worker_runtime
    with pytest.raises(UserError, match=f"{BERT}:19 is not offered as a serverless") as refused:
        start_deploy(rt, DeployRequest(spec=DeploySpec(model=BERT, endpoint="bert-api", serverless=True), requester="U1"))
    assert "managed compute" in refused.value.hint
    assert not rt.ledger.recent(limit=5), "refused before anything was recorded or queued"

    main = cli_on_azure(azure, redis_server, tmp_path, monkeypatch)
    assert main(["deploy", BERT, "--endpoint", "bert-api", "--serverless"]) == 2
    err = capsys.readouterr().err
    assert f"{BERT}:19 is not offered as a serverless" in err and "leave out --serverless" in err
    assert not azure.calls("PUT", "/serverlessEndpoints/bert-api")
    assert main(["deploy", PHI4, "--endpoint", "phi-cli", "--serverless", "--no-content-filter", "--json"]) == 0
    queued = json.loads(capsys.readouterr().out)["job"]
    assert queued["kind"] == "deploy" and queued["state"] == "queued"


@pytest.mark.parametrize(("status", "expected"), [
    ("Subscribed", None), ("PendingFulfillmentStart", "still being set up"), ("Suspended", "suspended the subscription"),
])
def test_marketplace_models_are_subscribed_first(azure: AzureStandIn, tmp_path: Path, status: str,
                                                 expected: str | None) -> None:
    azure.add_model(PHI4, "system_metadata", registry="azureml-meta", version="9")
    azure.marketplace_status = status
    platform = make_platform(azure, tmp_path, registry="azureml-meta")
    spec = DeploySpec(model=f"{PHI4}:9", endpoint="phi-meta", serverless=True)
    if expected:
        with pytest.raises(PlatformError, match=expected):
            platform.deploy(spec)
        assert not azure.calls("PUT", "/serverlessEndpoints/")
        return
    platform.deploy(spec)
    (subscription,) = azure.calls("PUT", "/marketplaceSubscriptions/")
    assert subscription.body["properties"]["modelId"] == f"azureml://registries/azureml-meta/models/{PHI4}"
    assert azure.requests.index(subscription) < azure.requests.index(azure.calls("PUT", "/serverlessEndpoints/")[0])


# ---------------------------------------------------------------------------- quota


def test_quota_reads_the_right_rows_the_regional_total_and_the_deployment_reserve(
        azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    # Usage/list.json: DSv2 family 2 of 24 used, the regional dedicated total 14 of 24: 10 cores free.
    assert platform.check_quota("Standard_DS3_v2", 2).ok, "8 cores fit in 10"
    job = platform.check_quota("Standard_DS3_v2", 3)
    assert not job.ok and "12 standardDSv2Family cores but only 10 are free (Total Cluster Dedicated Regional vCPUs)" \
        in job.message
    reserve = platform.check_quota("Standard_DS3_v2", 2, deployment=True)
    assert not reserve.ok and "20%" in reserve.message, "ceil(2 × 1.2) = 3 instances × 4 cores > 10"
    assert "Use 1 instance of Standard_DS3_v2 instead of 2" in reserve.suggestions
    assert any("Request quota increase" in s for s in reserve.suggestions)
    azure.set_usage("Total Cluster Dedicated Regional", limit=-1)
    azure.set_usage("NCASv3_T4 Family Cluster Dedicated", limit=-1)
    assert platform.check_quota("Standard_NC64as_T4_v3", 8).ok, "-1 is unlimited"
    assert not platform.check_quota("Standard_NC24s_v3", 1).ok, "retired sizes never pass"
    options = {o.name: o for o in platform.compute_options("finetune")}
    assert "Standard_NC24s_v3" not in options and options["Standard_DS3_v2"].free_instances == 5


def test_managed_deploy_is_refused_when_the_reserve_does_not_fit_and_the_advice_is_true(
        azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    with pytest.raises(PlatformError) as failure:
        platform.deploy(DeploySpec(model=BERT, endpoint="bert-ep", instances=3))
    text = str(failure.value)
    assert "20%" in text and "Azure ML studio" in text and "no setting for it" in text
    assert "choose shared quota in the form" not in text
    assert not azure.calls("PUT", "/deployments/")
    endpoint = platform.deploy(DeploySpec(model=BERT, endpoint="bert-ep", instances=1, owner="U1"))
    assert endpoint.key.get_secret_value() == "standin-primary-key"
    assert not azure.refusals()


# ---------------------------------------------------------------------------- errors


def test_throttled_and_unavailable_calls_are_retried(azure: AzureStandIn, platform: AzureMLPlatform,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    spec = FinetuneSpec(model=BERT, task=Task.TEXT_CLASSIFICATION, train=ASSET, mapping={"sentence1": "t", "label": "l"})
    azure.fail("PUT", r"/jobs/", 429, times=2)
    outcome = platform.run_finetune(spec, lambda progress: None)
    assert len(azure.calls("PUT", "/jobs/")) == 3, "azure-core's retry policy repeats 429s"
    monkeypatch.setattr(errors, "BACKOFF_SECONDS", (0.2, 0.2, 0.2))
    azure.fail("GET", rf"/jobs/{outcome.external_id}$", 503, times=5, code="ServiceUnavailable", message="unavailable")
    assert platform.job_status(outcome.external_id).state == JobState.QUEUED
    assert "retrying in" in caplog.text


def test_permission_errors_name_the_missing_role(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    azure.fail("GET", r"/usages$", 403, code="AuthorizationFailed", message="no authorization")
    with pytest.raises(PlatformError) as failure:
        platform.check_quota("Standard_DS3_v2", 1)
    assert "may not read compute quota" in str(failure.value) and "Reader on the subscription" in str(failure.value)


# ---------------------------------------------------------------------------- fmbot doctor --azure


def test_doctor_azure_checks_the_workspace_components_quota_and_names_a_missing_role(
        azure: AzureStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    for name, value in {**azure.environment(), "FMBOT_PLATFORM": "azureml", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                        "AZURE_RESOURCE_GROUP": "rg", "AZUREML_WORKSPACE": "demo_workspace1",
                        "FMBOT_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert main(["doctor", "--azure", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert all(c["status"] == "ok" for c in checks.values()), checks
    assert checks["component question_answering_pipeline"]["detail"] == "question_answering_pipeline 0.0.80"
    assert "4 retired ones" in checks["azure vm sizes"]["detail"]

    azure.fail("GET", r"/usages$", 403, times=10, code="AuthorizationFailed", message="no authorization")
    del azure.registry_components["chat_completion_pipeline"]
    assert main(["doctor", "--azure", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["azure quota"]["status"] == "problem" and "Reader on the subscription" in checks["azure quota"]["fix"]
    assert checks["component chat_completion_pipeline"]["status"] == "problem"
    assert checks["azure vm sizes"]["status"] == "ok"


# ---------------------------------------------------------------------------- the Slack deploy form


def test_slack_deploy_form_offers_serverless_only_for_models_azure_serves_so(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, object], slack, tmp_path: Path) -> None:
    from slack_sdk import WebClient

    from bot.settings import Settings
    from bot.slack.context import SlackContext
    from bot.slack.deploy import open_deploy
    from tests.slack_standin import BOT_TOKEN

    rt, _ = worker_runtime
    ctx = SlackContext(settings=Settings(), rt=rt)
    client = WebClient(token=BOT_TOKEN, base_url=slack.api_url)
    for model, offered in ((PHI4, True), (BERT, False)):
        open_deploy(ctx, client, "trigger", "C1", "U1", model)
        view = slack.of("views.open")[-1].params["view"]
        view = json.loads(view) if isinstance(view, str) else view
        kinds = [o["value"] for b in view["blocks"] if b.get("block_id") == "deploy_kind"
                 for o in b["element"]["options"]]
        assert ("serverless" in kinds) is offered, (model, kinds)


# ---------------------------------------------------------------------------- long jobs in workers


def ledger_job(rt: Runtime, kind: str, spec: dict) -> str:
    from workers.ledger import JobRecord, new_job_id

    record = rt.ledger.create(JobRecord(id=new_job_id(kind), kind=kind, model=f"{BERT}:19", task="text-classification",
                                        spec=spec, requester="U1"))
    return record.id


def asset_finetune() -> dict:
    return FinetuneSpec(model=f"{BERT}:19", task=Task.TEXT_CLASSIFICATION, train=ASSET,
                        mapping={"sentence1": "text", "label": "label"}).model_dump(mode="json")


def test_worker_submits_once_then_polls_to_completion_without_holding_a_worker(
        azure: AzureStandIn, services: AzureServices, worker_runtime: tuple[Runtime, object]) -> None:
    from rq.registry import ScheduledJobRegistry

    from workers.jobs import poll_job, run_job
    from workers.notifier import JobEvent

    services.require("mlflow")
    rt, notifier = worker_runtime
    job_id = ledger_job(rt, "finetune", asset_finetune())
    record = run_job(job_id)
    external_id = record["external_id"]
    assert record["state"] == "running" and rt.ledger.get(job_id).external_id == external_id
    assert len(ScheduledJobRegistry(queue=rt.queue).get_job_ids()) == 1, "a poll is scheduled instead of a worker waiting"
    run_job(job_id)  # a retried delivery of the same job
    assert len(azure.calls("PUT", "/jobs/")) == 1, "never submitted twice"

    azure.set_job(external_id, "Running")
    assert poll_job(job_id)["state"] == "running"
    assert notifier.events[-1][2].startswith(f"Azure: Running · https://ml.azure.com/runs/{external_id}")
    log_run(services, external_id, {"eval_loss": 0.42})
    azure.set_job(external_id, "Completed")
    final = poll_job(job_id)
    assert final["state"] == "completed" and final["output_model"] == f"{BERT}-ft:1"
    (search,) = azure.calls("POST", "/api/2.0/mlflow/runs/search")
    assert search.headers["Authorization"].startswith("Bearer ")
    register = azure.calls("PUT", f"/models/{BERT}-ft/versions/")[0]
    assert register.body["properties"]["modelUri"] == f"azureml://jobs/{external_id}/outputs/trained_model"
    assert poll_job(job_id)["state"] == "completed", "a late poll changes nothing"
    assert len([e for e in notifier.events if e[0] == JobEvent.COMPLETED]) == 1


def test_failed_and_canceled_azure_jobs_reach_the_ledger(azure: AzureStandIn,
                                                         worker_runtime: tuple[Runtime, object]) -> None:
    from handlers.jobs import cancel_job
    from workers.jobs import poll_job, run_job

    rt, _ = worker_runtime
    failing = ledger_job(rt, "finetune", asset_finetune())
    external_id = run_job(failing)["external_id"]
    azure.set_job(external_id, "Failed")
    final = poll_job(failing)
    assert final["state"] == "failed" and external_id in final["error"]

    canceled = ledger_job(rt, "finetune", asset_finetune())
    external_id = run_job(canceled)["external_id"]
    assert cancel_job(rt, canceled, "U1").state == JobState.CANCELED
    assert azure.calls("POST", f"/jobs/{external_id}/cancel")
    assert poll_job(canceled)["state"] == "canceled"


def test_local_files_are_checked_split_keyed_and_never_mixed_with_assets(
        azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    from platforms.azureml.data import prepare_rows

    mapping = ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION)
    rows = prepare_rows({"train_file_path": file_ref("sst2_small_validation.jsonl"), "validation_file_path": None,
                         "test_file_path": None}, mapping, split={"validation_file_path": 0.1, "test_file_path": 0.2})
    assert {name: len(part) for name, part in rows.items()} == {
        "train_file_path": 61, "validation_file_path": 8, "test_file_path": 18}, "87 rows, split by label"
    assert {r["label"] for r in rows["validation_file_path"]} == {"POSITIVE", "NEGATIVE"}, "stratified"
    translation = ColumnMapping.build({"source": "translation.en", "target": "translation.ro"}, Task.TRANSLATION)
    rows = prepare_rows({"train_file_path": file_ref("wmt_en_ro_test.json")}, translation,
                        rename={"source": "en", "target": "ro"})
    assert set(rows["train_file_path"][0]) == {"en", "ro"}, "keys named by the language codes"

    with pytest.raises(PlatformError, match="cannot mix"):
        platform.run_finetune(FinetuneSpec(model=BERT, task=Task.TEXT_CLASSIFICATION, train=ASSET,
                                           validation=file_ref("sst2_small_validation.jsonl"),
                                           mapping={"sentence1": "input_string", "label": "label_string"}),
                              lambda progress: None)
    assert not azure.calls("PUT", "/jobs/")


def test_form_compute_options_are_the_models_own_current_sizes(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    bert = platform.get_model(BERT)
    deploy = {o.name: o for o in platform.compute_options("deploy", model=bert)}
    assert "gpu-cluster" not in deploy, "managed endpoints do not run on clusters"
    assert set(deploy) <= set(bert.inference_compute) and not {n.lower() for n in deploy} & RETIRED
    assert deploy["Standard_DS3_v2"].free_instances == 1, "10 free cores hold one instance with its 20% reserve"
    finetune = [o.name for o in platform.compute_options("finetune", model=bert)]
    assert finetune[0] == "gpu-cluster" and "Standard_NC24ads_A100_v4" in finetune and "Standard_DS3_v2" not in finetune


def slack_deploy_form(azure: AzureStandIn, slack_settings, slack, monkeypatch: pytest.MonkeyPatch, model: str):
    """A bot on Azure ML behind signed Slack HTTP, with `/fm deploy model`'s form open: (bot, sender, view)."""
    from tests.bot_server import BotServer
    from tests.slack_standin import SlackSender

    for name, value in azure.environment().items():
        monkeypatch.setenv(name, value)
    settings = slack_settings.replace(fmbot_platform="azureml", azure_subscription_id=SUBSCRIPTION,
                                      azure_resource_group="rg", azureml_workspace="demo_workspace1")
    bot = BotServer(settings)
    sender = SlackSender(bot.url, response_url=f"{slack.base_url}/respond/1")
    assert sender.command(f"deploy {model}").status_code == 200
    view = slack.wait_for(lambda: slack.of("views.open"), 30)[0].params["view"]
    return bot, sender, json.loads(view) if isinstance(view, str) else view


def test_slack_deploy_form_reads_the_serverless_choice_and_the_content_filter_box(
        azure: AzureStandIn, slack_settings, slack, redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack sends radio buttons and checkboxes as `selected_option(s)`: the form must read them, or every
    serverless request silently became a managed deployment without its content filter."""
    from bot.slack.ids import ActionId, BlockId
    from tests.helpers import wait_until
    from workers.ledger import Ledger

    bot, sender, view = slack_deploy_form(azure, slack_settings, slack, monkeypatch, PHI4)
    try:
        filter_on = {"text": {"type": "plain_text", "text": "Filter prompts and completions"}, "value": "on"}
        values = {
            BlockId.DEPLOY_KIND: {ActionId.DEPLOY_KIND: {"type": "radio_buttons",
                                                         "selected_option": {"value": "serverless"}}},
            BlockId.ENDPOINT_NAME: {ActionId.TEXT: {"type": "plain_text_input", "value": "phi-chat"}},
            BlockId.CONTENT_FILTER: {ActionId.TEXT: {"type": "checkboxes", "selected_options": [filter_on]}},
        }
        assert sender.view_submission(view, values).status_code == 200
        (record,) = wait_until(lambda: Ledger(redis).recent(limit=5), 30)
    finally:
        bot.close()
    assert record.kind == "deploy" and record.spec["serverless"] is True, record.spec
    assert record.spec["content_filtering"] is True and record.spec["endpoint"] == "phi-chat", record.spec


def test_slack_deploy_form_refuses_a_managed_deployment_over_quota_inline(
        azure: AzureStandIn, slack_settings, slack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed Slack HTTP to a bot on Azure ML: 2 × Standard_DS3_v2 with the 20% reserve needs 12 of 10 free cores."""
    from bot.slack.ids import ActionId, BlockId

    bot, sender, view = slack_deploy_form(azure, slack_settings, slack, monkeypatch, BERT)
    try:
        values = {
            BlockId.DEPLOY_KIND: {ActionId.DEPLOY_KIND: {"type": "radio_buttons",
                                                         "selected_option": {"value": "managed"}}},
            BlockId.ENDPOINT_NAME: {ActionId.TEXT: {"type": "plain_text_input", "value": "bert-ep"}},
            BlockId.COMPUTE: {ActionId.COMPUTE: {"type": "external_select",
                                                 "selected_option": {"value": "Standard_DS3_v2"}}},
            BlockId.INSTANCES: {ActionId.NUMBER: {"type": "number_input", "value": "2"}},
        }
        answer = sender.view_submission(view, values).json()
    finally:
        bot.close()
    assert answer["response_action"] == "errors", answer
    (message,) = answer["errors"].values()
    assert "standardDSv2Family" in message and "10 are free" in message, message
    assert "Standard_DS3_v2" in message and "1 instance" in message, message
    assert not azure.calls("PUT", "/onlineEndpoints/bert-ep"), "nothing created"


# ---------------------------------------------------------------------------- comparisons


def flipped(labels: list[str], every: int) -> list[str]:
    """The references with every `every`-th row wrong: a model of known accuracy."""
    return [("NEGATIVE" if label == "POSITIVE" else "POSITIVE") if i % every == 0 else label
            for i, label in enumerate(labels)]


def test_an_azure_comparison_ranks_with_intervals_from_the_rows_the_prediction_step_wrote(
        azure: AzureStandIn, services: AzureServices, worker_runtime: tuple[Runtime, object]) -> None:
    """Three models through the SDK: two whose model_prediction files are in the datastore rank with
    intervals from those rows; one whose ground_truth file is missing still ranks, without one, and the
    thread says why."""
    from bot import console
    from bot.slack.views.compare import result_reply
    from bot.teams.views.compare import result_card as teams_result_card
    from handlers.compare import CompareRequest, start_comparison
    from workers import compare
    from workers.jobs import poll_job

    services.require("azurite")
    services.require("mlflow")
    rt, _ = worker_runtime
    assert "model_evaluation_pipeline" in azure.registry_components, "members take the two steps even so"
    models = [f"{BERT}:{version}" for version in ("30", "31", "32")]
    for model in models:
        azure.add_model(BERT, "tags", version=model.split(":")[1])
    record = start_comparison(rt, CompareRequest(
        models=models, task=Task.TEXT_CLASSIFICATION, test=file_ref("sst2_small_validation.jsonl"),
        mapping=ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION),
        requester="U1"))
    drain(rt)
    members = [rt.ledger.get(job) for job in record.spec["members"]]
    assert all(m.state == JobState.RUNNING and m.external_id for m in members), ([m.error for m in members],
                                                                                 azure.refusals())
    labels = [json.loads(line)["label"] for line in uploaded_text(services, "fmbot-ev-*.jsonl").splitlines()]
    assert len(labels) == 87
    written = {members[0].model: flipped(labels, 10), members[1].model: flipped(labels, 3),
               members[2].model: flipped(labels, 5)}
    for member, accuracy in zip(members, (0.89, 0.66, 0.8), strict=True):
        log_run(services, member.external_id, {"accuracy": accuracy})
        azure.finish_evaluation(member.external_id, written[member.model], labels,
                                written=("predictions",) if member is members[2] else ("predictions", "ground_truth"))
        assert poll_job(member.id)["state"] == "completed"

    finished = compare.finish(rt, record.id)
    assert finished["state"] == "completed", finished
    done = rt.ledger.get(record.id)
    result = compare.ComparisonResult.model_validate(done.result["comparison"])
    by_model = {s.model: s for s in result.standings}
    assert [s.model for s in result.standings] == [members[0].model, members[2].model, members[1].model]
    for member in members[:2]:
        rows = rt.ledger.get(member.id).rows
        assert [(r["reference"], r["prediction"]) for r in rows] == list(zip(labels, written[member.model]))
        low, high = by_model[member.model].interval
        share = sum(r["reference"] == r["prediction"] for r in rows) / len(rows)
        assert low < share < high and high - low > 0.05, (low, share, high)
    assert by_model[members[1].model].interval[1] < by_model[members[0].model].interval[1]
    missing = by_model[members[2].model]
    assert missing.interval is None and missing.rank == 2 and "ground_truth" in missing.rows_unavailable
    assert result.rows == 87
    disagree = sum(a != b for a, b in zip(written[members[0].model], written[members[1].model]))
    assert result.disagreement_count == disagree and result.disagreements
    assert all(d.reference == labels[d.index] and set(d.predictions) == {m.model for m in members[:2]}
               for d in result.disagreements)
    assert f"no interval for {members[2].model}: the ground_truth file" in console.comparison(done)
    reply = json.dumps(result_reply(done).blocks)
    assert f"No interval for `{members[2].model}`: the ground_truth file of Azure job" in reply
    assert "is not in the datastore" in reply
    teams_card = json.dumps(teams_result_card(done))
    assert f"No interval for {members[2].model}: the ground_truth file of Azure job" in teams_card


def test_azure_rows_are_bounded_and_an_oversized_output_costs_only_the_interval(
        azure: AzureStandIn, services: AzureServices, platform: AzureMLPlatform,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from platforms.azureml import predictions
    from platforms.local.training import ROW_LIMIT, ROW_VALUE_CHARS

    services.require("azurite")
    del azure.registry_components["model_evaluation_pipeline"]
    spec = EvaluateSpec(model=f"{BERT}:18", task=Task.TEXT_CLASSIFICATION,
                        test=DataRef(path="azureml:test-data:1", name="t"), mapping={"sentence1": "text", "label": "label"})
    many = platform.run_evaluation(spec, lambda progress: None).external_id
    labels = [f"label-{i % 3}-" + "x" * 600 for i in range(ROW_LIMIT + 100)]
    azure.finish_evaluation(many, labels, labels)
    done = platform.job_status(many)
    assert done.state == JobState.COMPLETED and len(done.rows) == ROW_LIMIT and not done.result
    assert done.rows[0]["prediction"] == labels[0][:ROW_VALUE_CHARS], "clipped as the local platform clips"

    huge = platform.run_evaluation(spec, lambda progress: None).external_id
    azure.finish_evaluation(huge, ["y" * predictions.OUTPUT_BYTES], ["POSITIVE"])
    done = platform.job_status(huge)
    assert done.state == JobState.COMPLETED and done.rows == []
    assert f"first row of predictions is over {predictions.OUTPUT_BYTES:,} bytes" in done.result["rows_unavailable"]

    mismatched = platform.run_evaluation(spec, lambda progress: None).external_id
    azure.finish_evaluation(mismatched, ["POSITIVE", "NEGATIVE"], ["POSITIVE"])
    assert "do not pair up: 2 predictions, 1 rows of ground truth" in (
        platform.job_status(mismatched).result["rows_unavailable"])
    tags = platform.run_evaluation(spec, lambda progress: None).external_id
    azure.finish_evaluation(tags, [["B-PER", "O"]], [["B-PER", "B-LOC"]])
    assert platform.job_status(tags).rows == [{"input": "", "reference": "B-PER B-LOC", "prediction": "B-PER O"}]
    broken = platform.run_evaluation(spec, lambda progress: None).external_id
    azure.finish_evaluation(broken, ["POSITIVE"], ["POSITIVE"])
    job = azure.resources[f"{WORKSPACE_PATH}/jobs/{broken}".lower()]["properties"]
    path = job["outputs"]["predictions"]["uri"].split("/paths/", 1)[1]
    services.blob_service().get_container_client(BLOB_CONTAINER).upload_blob(path, b'"POSITIVE"\n{oops\n',
                                                                              overwrite=True)
    done = platform.job_status(broken)
    assert done.state == JobState.COMPLETED and done.rows == [] and "were not read" in done.result["rows_unavailable"]

    single = make_platform(azure, Path(services.folder), None)
    azure.reset()
    azure.add_model(BERT, "tags", version="18")
    one_step = single.run_evaluation(spec, lambda progress: None).external_id
    azure.set_job(one_step, "Completed")
    done = single.job_status(one_step)
    assert done.rows == [] and "has no predictions or ground_truth output" in done.result["rows_unavailable"]

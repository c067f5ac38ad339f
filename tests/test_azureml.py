"""The Azure ML platform driven through the real azure-ai-ml SDK against a local HTTPS stand-in.

Every test asserts on the HTTP requests the SDK sent (component ids, inputs, column keys, SKUs,
counts), never on mocked SDK objects. What the stand-in cannot prove is listed in the README's
Azure ML section (blob uploads and downloads, MLflow metrics, real RBAC, real provisioning).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq.registry import ScheduledJobRegistry

from platforms.azureml import AzureMLPlatform, errors
from platforms.azureml.catalog import CATALOG_KEY
from platforms.base import (
    DataRef,
    DeploySpec,
    EvaluateSpec,
    FinetuneSpec,
    ImportSpec,
    JobState,
    ModelNotFound,
    PlatformError,
)
from platforms.tasks import Task
from tests.azure_standin import (
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    WORKSPACE_PATH,
    AzureStandIn,
    StandInCredential,
)
from workers import runtime
from workers.ledger import JobRecord, Ledger, new_job_id
from workers.notifier import JobEvent
from workers.queues import job_queue
from workers.runtime import Runtime

BERT = "bert-base-uncased"
LLAMA = "Llama-3.3-70B-Instruct"
TRAIN = DataRef(path="azureml:sst2-train:1", name="azureml:sst2-train:1")
TEST = DataRef(path="azureml:sst2-test:2", name="azureml:sst2-test:2")


def _inputs(*names: str, kind: str = "string") -> dict[str, dict]:
    return {name: {"type": kind, "optional": True} for name in names}


FINETUNE_COMMON = (
    _inputs("huggingface_id", "task_name", "compute_model_import", "compute_preprocess", "compute_finetune",
            "instance_type_model_import", "instance_type_preprocess", "instance_type_finetune", "max_seq_length")
    | _inputs("num_train_epochs", "per_device_train_batch_size", "per_device_eval_batch_size", "num_nodes_finetune",
              kind="integer")
    | _inputs("learning_rate", kind="number")
    | _inputs("mlflow_model_path", kind="mlflow_model")
    | _inputs("train_file_path", "validation_file_path", "test_file_path", kind="uri_file")
)
PIPELINE_KEYS = {
    "text_classification_pipeline": ("sentence1_key", "sentence2_key", "label_key"),
    "token_classification_pipeline": ("token_key", "tag_key"),
    "question_answering_pipeline": ("question_key", "context_key", "answers_key", "answer_start_key", "answer_text_key"),
    "summarization_pipeline": ("document_key", "summary_key"),
    "translation_pipeline": ("source_lang", "target_lang"),
}
FINETUNE_OUTPUTS = {"mlflow_model_folder": {"type": "mlflow_model"}, "pytorch_model_folder": {"type": "uri_folder"}}


def seed(standin: AzureStandIn, *, evaluation_pipeline: bool = True) -> None:
    """Registry content shaped like the real `azureml` registry's (tags and component inputs)."""
    standin.add_registry_model(BERT, "3", description="BERT base (old)", tags={"task": "fill-mask", "license": "apache-2.0"})
    standin.add_registry_model(BERT, "4", description="BERT base model, uncased.", tags={
        "task": "fill-mask,text-classification", "license": "apache-2.0",
        "inference_compute_allow_list": "['Standard_DS3_v2', 'Standard_NC6s_v3']",
        "finetune_compute_allow_list": "['Standard_NC6s_v3', 'Standard_NC24s_v3']",
        "evaluation_compute_allow_list": "['Standard_NC6s_v3']",
        "SharedComputeCapacityEnabled": ""},
        properties={"finetune-recommended-sku": "Standard_NC24s_v3"})
    standin.add_registry_model("distilbert-base-cased", "9", description="DistilBERT", tags={
        "task": "question-answering", "license": "apache-2.0", "finetune_compute_allow_list": "['Standard_NC6s_v3']"})
    standin.add_registry_model(LLAMA, "5", description="Meta Llama 3.3 70B", tags={"task": "chat-completion"},
                               registry="azureml-meta")
    for name, keys in PIPELINE_KEYS.items():
        standin.add_registry_component(name, "0.0.73", FINETUNE_COMMON | _inputs(*keys), FINETUNE_OUTPUTS)
    evaluation_inputs = (_inputs("task", "input_column_names", "label_column_name", "device", "compute_name")
                         | _inputs("batch_size", kind="integer") | _inputs("test_data", kind="uri_file")
                         | _inputs("mlflow_model", kind="mlflow_model"))
    if evaluation_pipeline:
        standin.add_registry_component("model_evaluation_pipeline", "0.0.33", evaluation_inputs,
                                       {"evaluation_result": {"type": "uri_folder"}})
    standin.add_registry_component("model_prediction", "0.0.35", evaluation_inputs,
                                   {"predictions": {"type": "uri_file"}, "ground_truth": {"type": "uri_file"}},
                                   kind="command")
    standin.add_registry_component("compute_metrics", "0.0.35",
                                   _inputs("task") | _inputs("ground_truth", "prediction", kind="uri_file"),
                                   {"evaluation_result": {"type": "uri_folder"}}, kind="command")
    standin.add_registry_component("import_model", "0.0.40",
                                   _inputs("model_id", "task_name", "model_source", "compute", "instance_type"),
                                   {"model_registration_details": {"type": "uri_file"},
                                    "mlflow_model_folder": {"type": "mlflow_model"}})
    standin.add_compute("gpu-cluster", "Standard_NC24s_v3")
    standin.add_compute("cpu-cluster", "Standard_DS3_v2")
    standin.vm_sizes = [
        {"name": "Standard_NC6s_v3", "family": "standardNCSv3Family", "vCPUs": 6, "gpus": 1, "memoryGB": 112.0,
         "supportedComputeTypes": ["AmlCompute"]},
        {"name": "Standard_NC24s_v3", "family": "standardNCSv3Family", "vCPUs": 24, "gpus": 4, "memoryGB": 448.0,
         "supportedComputeTypes": ["AmlCompute"]},
        {"name": "Standard_DS3_v2", "family": "standardDSv2Family", "vCPUs": 4, "gpus": 0, "memoryGB": 14.0,
         "supportedComputeTypes": ["AmlCompute"]},
    ]
    standin.usages = [
        {"id": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/eastus/usages/ncsv3",
         "amlWorkspaceLocation": "eastus", "type": "Microsoft.MachineLearningServices/vmFamily", "unit": "Count",
         "currentValue": 12, "limit": 24, "name": {"value": "standardNCSv3Family", "localizedValue": "NCSv3 Family Cores"}},
        {"id": f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/eastus/usages/dsv2",
         "amlWorkspaceLocation": "eastus", "type": "Microsoft.MachineLearningServices/vmFamily", "unit": "Count",
         "currentValue": 0, "limit": 100, "name": {"value": "standardDSv2Family", "localizedValue": "DSv2 Family Cores"}},
    ]


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch) -> Iterator[AzureStandIn]:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    standin = AzureStandIn().start()
    # A few SDK-internal clients (registry discovery while deploying a registry model) ignore
    # `connection_verify`; like on a real machine, they trust what requests trusts.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.cert_path))
    seed(standin)
    yield standin
    standin.stop()
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)


def make_platform(standin: AzureStandIn, tmp_path: Path, redis: Redis | None = None,
                  registry: str = "azureml") -> AzureMLPlatform:
    return AzureMLPlatform.from_settings(
        subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE, registry=registry,
        data_dir=tmp_path, credential=StandInCredential(), cloud=standin.cloud_name,
        cloud_metadata=standin.cloud_metadata(), connection_verify=str(standin.cert_path), redis=redis)


@pytest.fixture
def platform(azure: AzureStandIn, tmp_path: Path, redis: Redis) -> AzureMLPlatform:
    return make_platform(azure, tmp_path, redis)


def node_of(body: dict) -> dict:
    (node,) = body["properties"]["jobs"].values()
    return node


def literal(node: dict, name: str) -> str:
    return node["inputs"][name]["value"]


def finetune_spec(**changes) -> FinetuneSpec:
    return FinetuneSpec(**{"model": f"{BERT}:4", "task": Task.TEXT_CLASSIFICATION, "train": TRAIN,
                           "mapping": {"sentence1": "text", "label": "sentiment"}, **changes})


# ---------------------------------------------------------------------------- catalog


def test_catalog_lists_registry_models_and_serves_them_from_redis(azure: AzureStandIn, platform: AzureMLPlatform,
                                                                  redis: Redis) -> None:
    cards = {c.name: c for c in platform.list_models()}

    assert set(cards) == {BERT, "distilbert-base-cased", LLAMA}
    bert = cards[BERT]
    assert bert.version == "4" and bert.tasks == [Task.FILL_MASK, Task.TEXT_CLASSIFICATION]
    assert bert.license == "apache-2.0" and bert.description == "BERT base model, uncased."
    assert bert.inference_compute == ["Standard_DS3_v2", "Standard_NC6s_v3"]
    assert bert.finetune_compute == ["Standard_NC6s_v3", "Standard_NC24s_v3"]
    assert bert.evaluation_compute == ["Standard_NC6s_v3"]
    assert bert.shared_quota and not cards["distilbert-base-cased"].shared_quota
    assert bert.properties["finetune-recommended-sku"] == "Standard_NC24s_v3"
    assert bert.source == f"azureml://registries/azureml/models/{BERT}/versions/4"
    listing = azure.calls("GET", "/registries/azureml/models")
    assert listing[0].query["api-version"] == "2021-10-01-dataplanepreview"
    assert {r.path.rsplit("/", 1)[-1] for r in listing[1:]} == {"4", "9", "5"}, "one GET of each latest version"
    assert json.loads(redis.get(CATALOG_KEY))["cards"][0]["name"] == BERT

    before = len(azure.requests)
    assert [c.name for c in platform.list_models(Task.QUESTION_ANSWERING)] == ["distilbert-base-cased"]
    assert platform.get_model(BERT).version == "4"
    assert len(azure.requests) == before, "a fresh cached listing answers without Azure"

    azure.add_registry_model("phi-3-mini", "1", tags={"task": "text-generation"})
    platform.catalog.fresh_seconds = 0
    assert "phi-3-mini" not in {c.name for c in platform.list_models()}, "a stale listing is served at once"
    platform.catalog.refreshing.join(timeout=30)
    platform.catalog.fresh_seconds = 3600
    assert "phi-3-mini" in {c.name for c in platform.list_models()}, "then refreshed in the background"


def test_get_model_by_version_and_unknown_names(azure: AzureStandIn, tmp_path: Path) -> None:
    platform = make_platform(azure, tmp_path)  # no Redis: straight to the registry

    assert platform.get_model(f"{BERT}:3").description == "BERT base (old)"
    assert azure.calls("GET", f"/models/{BERT}/versions/3")
    with pytest.raises(ModelNotFound, match="bert-base-uncased"):
        platform.get_model("bert-base-uncasd")


# ---------------------------------------------------------------------------- fine-tune


def test_finetune_submits_the_registry_pipeline_with_mapped_column_keys(azure: AzureStandIn,
                                                                       platform: AzureMLPlatform) -> None:
    spec = finetune_spec(validation=TEST, mapping={"sentence1": "text", "sentence2": "hypothesis", "label": "sentiment"},
                         hyperparameters={"epochs": 2, "learning_rate": 3e-5, "batch_size": 8})
    outcome = platform.run_finetune(spec, lambda progress: None)

    assert outcome.state == JobState.RUNNING and outcome.external_id
    body = azure.job_body(outcome.external_id)
    node = node_of(body)
    assert node["componentId"] == "azureml://registries/azureml/components/text_classification_pipeline/versions/0.0.73"
    assert (literal(node, "sentence1_key"), literal(node, "sentence2_key"), literal(node, "label_key")) == (
        "text", "hypothesis", "sentiment")
    assert literal(node, "task_name") == "SingleLabelClassification"
    assert node["inputs"]["mlflow_model_path"] == {"uri": f"azureml://registries/azureml/models/{BERT}/versions/4",
                                                   "job_input_type": "mlflow_model"}
    assert node["inputs"]["train_file_path"]["uri"].endswith(f"{WORKSPACE}/data/sst2-train/versions/1")
    assert node["inputs"]["validation_file_path"]["uri"].endswith("/data/sst2-test/versions/2")
    assert "test_file_path" not in node["inputs"]
    assert literal(node, "instance_type_finetune") == "Standard_NC24s_v3", "the model's recommended SKU, serverless"
    assert "compute_finetune" not in node["inputs"]
    assert (literal(node, "num_train_epochs"), literal(node, "learning_rate"),
            literal(node, "per_device_train_batch_size")) == ("2", "3e-05", "8")
    assert body["properties"]["tags"] == {"fmbot.kind": "finetune", "fmbot.output_name": f"{BERT}-ft"}
    assert body["properties"]["outputs"]["trained_model"]["jobOutputType"] == "mlflow_model"


@pytest.mark.parametrize(("task", "mapping", "expected"), [
    (Task.TOKEN_CLASSIFICATION, {"tokens": "words", "tags": "ner"},
     {"token_key": "words", "tag_key": "ner", "task_name": "NamedEntityRecognition"}),
    (Task.QUESTION_ANSWERING, {"question": "q", "context": "ctx", "answer_text": "ans", "answer_start": "start"},
     {"question_key": "q", "context_key": "ctx", "answer_text_key": "ans", "answer_start_key": "start"}),
    (Task.SUMMARIZATION, {"document": "article", "summary": "highlights"},
     {"document_key": "article", "summary_key": "highlights"}),
    (Task.TRANSLATION, {"source": "en", "target": "ro"}, {"source_lang": "en", "target_lang": "ro"}),
])
def test_finetune_maps_every_tasks_column_keys(azure: AzureStandIn, platform: AzureMLPlatform, task: Task,
                                               mapping: dict[str, str], expected: dict[str, str]) -> None:
    spec = finetune_spec(model="google/mt5-small", task=task, mapping=mapping, compute="gpu-cluster")
    node = node_of(azure.job_body(platform.run_finetune(spec, lambda progress: None).external_id))

    assert node["componentId"].split("/")[-3] == {
        Task.TOKEN_CLASSIFICATION: "token_classification_pipeline", Task.QUESTION_ANSWERING: "question_answering_pipeline",
        Task.SUMMARIZATION: "summarization_pipeline", Task.TRANSLATION: "translation_pipeline"}[task]
    assert {name: literal(node, name) for name in expected} == expected
    assert literal(node, "huggingface_id") == "google/mt5-small" and "mlflow_model_path" not in node["inputs"]
    assert {name: literal(node, name) for name in ("compute_model_import", "compute_preprocess", "compute_finetune")} == {
        "compute_model_import": "gpu-cluster", "compute_preprocess": "gpu-cluster", "compute_finetune": "gpu-cluster"}
    assert "instance_type_finetune" not in node["inputs"]


def test_local_files_are_checked_split_and_keyed_for_upload() -> None:
    """What would be uploaded as `uri_file` assets (the blob upload itself needs real storage)."""
    from platforms.azureml.data import prepare_rows
    from platforms.datasets import ColumnMapping
    from tests.conftest import DATA

    sst2 = DataRef(path=str(DATA / "sst2_small_validation.jsonl"), name="sst2.jsonl")
    mapping = ColumnMapping.build({"sentence1": "input_string", "label": "label_string"}, Task.TEXT_CLASSIFICATION)
    rows = prepare_rows({"train_file_path": sst2, "validation_file_path": None, "test_file_path": None}, mapping,
                        split={"validation_file_path": 0.1, "test_file_path": 0.2})
    assert {name: len(part) for name, part in rows.items()} == {
        "train_file_path": 61, "validation_file_path": 8, "test_file_path": 18}, "87 rows, split by label"
    assert set(rows["test_file_path"][0]) == {"sentence1", "label"}
    assert {r["label"] for r in rows["validation_file_path"]} == {"POSITIVE", "NEGATIVE"}, "stratified"

    wmt = DataRef(path=str(DATA / "wmt_en_ro_test.json"), name="wmt.json")
    translation = ColumnMapping.build({"source": "translation.en", "target": "translation.ro"}, Task.TRANSLATION)
    rows = prepare_rows({"train_file_path": wmt}, translation, rename={"source": "en", "target": "ro"})
    assert set(rows["train_file_path"][0]) == {"en", "ro"}, "Azure's translation pipeline reads language-code keys"


def test_mixing_files_and_assets_is_refused(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    from tests.conftest import DATA

    local = DataRef(path=str(DATA / "sst2_small_validation.jsonl"), name="sst2.jsonl")
    with pytest.raises(PlatformError, match="cannot mix"):
        platform.run_finetune(finetune_spec(validation=local), lambda progress: None)
    assert not azure.calls("PUT", "/jobs/")


# ---------------------------------------------------------------------------- long jobs in workers


class RecordingNotifier:
    """Keeps what would be posted to the thread, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[JobEvent, str, str | None]] = []

    def job_changed(self, record: JobRecord, event: JobEvent, *, skip: int = 0) -> JobRecord:
        self.events.append((event, record.state, record.message))
        return record


@pytest.fixture
def worker_runtime(platform: AzureMLPlatform, redis: Redis) -> Iterator[tuple[Runtime, RecordingNotifier]]:
    notifier = RecordingNotifier()
    rt = Runtime(redis=redis, ledger=Ledger(redis), queue=job_queue(redis), notifier=notifier,
                 platform_factory=lambda: platform, progress_interval=0.0, job_retries=1)
    runtime.install(rt)
    yield rt, notifier
    runtime.install(None)


def ledger_job(rt: Runtime, kind: str, spec: dict) -> str:
    record = rt.ledger.create(JobRecord(id=new_job_id(kind), kind=kind, model=f"{BERT}:4", task="text-classification",
                                        spec=spec, requester="U1"))
    return record.id


def test_worker_submits_once_then_polls_to_completion_without_holding_a_worker(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, RecordingNotifier], redis: Redis) -> None:
    from workers.jobs import poll_job, run_job

    rt, notifier = worker_runtime
    job_id = ledger_job(rt, "finetune", finetune_spec().model_dump(mode="json"))
    scheduled = ScheduledJobRegistry(queue=rt.queue)

    record = run_job(job_id)
    external_id = record["external_id"]
    assert record["state"] == "running" and external_id
    assert rt.ledger.get(job_id).external_id == external_id, "the Azure job name is in the ledger"
    assert len(scheduled.get_job_ids()) == 1, "a poll is scheduled instead of a worker waiting"

    run_job(job_id)  # a retried delivery of the same job
    assert len(azure.calls("PUT", "/jobs/")) == 1, "never submitted twice"

    azure.set_job(external_id, "Running")
    assert poll_job(job_id)["state"] == "running"
    event, state, message = notifier.events[-1]
    assert (event, state) == (JobEvent.PROGRESS, "running")
    assert message.startswith(f"Azure: Running · https://ml.azure.com/runs/{external_id}"), "state changes reach the thread"

    azure.add_run(external_id, "finetune-step", {"train_loss": 0.31, "eval_loss": 0.42, "eval_accuracy": 0.88})
    azure.add_run("someone-elses-job", "other-step", {"train_loss": 9.9})
    azure.set_job(external_id, "Completed")
    final = poll_job(job_id)
    assert final["state"] == "completed" and final["output_model"] == f"{BERT}-ft:1"
    assert final["metrics"] == {"eval_accuracy": 0.88, "eval_loss": 0.42, "train_loss": 0.31}
    (search,) = azure.calls("POST", "/api/2.0/mlflow/runs/search")
    assert search.body["filter"] == f"tags.mlflow.rootRunId = '{external_id}'"
    assert search.headers["Authorization"].startswith("Bearer ")
    register = azure.calls("PUT", f"/models/{BERT}-ft/versions/")[0]
    assert register.body["properties"]["modelUri"] == f"azureml://jobs/{external_id}/outputs/trained_model"
    assert register.body["properties"]["modelType"] == "mlflow_model"
    assert notifier.events[-1][0] == JobEvent.COMPLETED
    assert poll_job(job_id)["state"] == "completed", "a late poll changes nothing"
    assert len([e for e in notifier.events if e[0] == JobEvent.COMPLETED]) == 1


def test_failed_azure_job_fails_the_ledger_job(azure: AzureStandIn,
                                               worker_runtime: tuple[Runtime, RecordingNotifier]) -> None:
    from workers.jobs import poll_job, run_job

    rt, notifier = worker_runtime
    job_id = ledger_job(rt, "finetune", finetune_spec().model_dump(mode="json"))
    external_id = run_job(job_id)["external_id"]
    azure.set_job(external_id, "Failed")

    final = poll_job(job_id)
    assert final["state"] == "failed" and external_id in final["error"]
    assert notifier.events[-1][0] == JobEvent.FAILED


def test_cancel_cancels_the_azure_job(azure: AzureStandIn, worker_runtime: tuple[Runtime, RecordingNotifier]) -> None:
    from handlers.jobs import cancel_job
    from workers.jobs import poll_job, run_job

    rt, _ = worker_runtime
    job_id = ledger_job(rt, "finetune", finetune_spec().model_dump(mode="json"))
    external_id = run_job(job_id)["external_id"]

    assert cancel_job(rt, job_id, "U1").state == JobState.CANCELED
    (cancel,) = azure.calls("POST", f"/jobs/{external_id}/cancel")
    assert cancel.query["api-version"]
    assert poll_job(job_id)["state"] == "canceled"


# ---------------------------------------------------------------------------- evaluation


def test_evaluation_submits_model_evaluation_pipeline(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    spec = EvaluateSpec(model=f"{BERT}:4", task=Task.TEXT_CLASSIFICATION, test=TEST,
                        mapping={"sentence1": "text", "sentence2": "hypothesis", "label": "sentiment"})
    outcome = platform.run_evaluation(spec, lambda progress: None)

    node = node_of(azure.job_body(outcome.external_id))
    assert node["componentId"].endswith("/components/model_evaluation_pipeline/versions/0.0.33")
    assert literal(node, "task") == "text-classification"
    assert literal(node, "input_column_names") == "text,hypothesis"
    assert literal(node, "label_column_name") == "sentiment"
    assert literal(node, "device") == "auto"
    assert node["inputs"]["test_data"]["uri"].endswith("/data/sst2-test/versions/2")
    assert node["inputs"]["mlflow_model"]["uri"] == f"azureml://registries/azureml/models/{BERT}/versions/4"

    azure.add_run(outcome.external_id, "compute-metrics-step", {"accuracy": 0.91, "f1_score_macro": 0.9})
    azure.set_job(outcome.external_id, "Completed")
    done = platform.job_status(outcome.external_id)
    assert (done.state, done.metrics) == (JobState.COMPLETED, {"accuracy": 0.91, "f1_score_macro": 0.9})


def test_evaluation_falls_back_to_prediction_and_metrics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    standin = AzureStandIn().start()
    try:
        seed(standin, evaluation_pipeline=False)
        platform = make_platform(standin, tmp_path)
        spec = EvaluateSpec(model="distilbert-base-cased", task=Task.QUESTION_ANSWERING, test=TEST,
                            mapping={"question": "q", "context": "ctx", "answers": "answers"}, compute="cpu-cluster")
        body = standin.job_body(platform.run_evaluation(spec, lambda progress: None).external_id)
    finally:
        standin.stop()
    nodes = body["properties"]["jobs"]
    by_component = {n["componentId"].split("/")[-3]: n for n in nodes.values()}
    assert set(by_component) == {"model_prediction", "compute_metrics"}
    predict = by_component["model_prediction"]
    assert (literal(predict, "task"), literal(predict, "input_column_names"), literal(predict, "label_column_name")) == (
        "question-answering", "q,ctx", "answers")
    assert predict["computeId"].endswith("/computes/cpu-cluster")
    assert by_component["compute_metrics"]["inputs"]["prediction"]["value"].endswith("outputs.predictions}}")


# ---------------------------------------------------------------------------- deploy


def test_managed_deploy_creates_key_endpoint_deployment_and_traffic(azure: AzureStandIn,
                                                                     platform: AzureMLPlatform) -> None:
    endpoint = platform.deploy(DeploySpec(model=BERT, endpoint="bert-ep", instances=2, owner="U1"))

    puts = azure.calls("PUT", "/onlineEndpoints/bert-ep")
    endpoint_puts = [p for p in puts if "/deployments/" not in p.path]
    (deployment,) = [p for p in puts if p.path.endswith("/deployments/default")]
    assert endpoint_puts[0].body["properties"]["authMode"] == "Key"
    assert endpoint_puts[0].body["location"] == "eastus"
    assert deployment.body["sku"] == {"name": "Default", "capacity": 2}
    assert deployment.body["properties"]["instanceType"] == "Standard_DS3_v2"
    assert deployment.body["properties"]["model"] == f"azureml://registries/azureml/models/{BERT}/versions/4"
    assert deployment.body["properties"]["requestSettings"]["maxConcurrentRequestsPerInstance"] == 1
    assert deployment.body["properties"]["livenessProbe"]["initialDelay"] == "PT10M"
    assert endpoint_puts[-1].body["properties"]["traffic"] == {"default": 100}
    assert azure.calls("POST", "/onlineEndpoints/bert-ep/listKeys")
    assert endpoint.url == "https://bert-ep.eastus.inference.ml.azure.com/score"
    assert endpoint.key.get_secret_value() == "standin-primary-key" and endpoint.instances == 2
    assert [e.name for e in platform.list_endpoints()] == ["bert-ep"]

    with pytest.raises(PlatformError, match="already exists"):
        platform.deploy(DeploySpec(model=BERT, endpoint="bert-ep"))


def test_serverless_deploy_subscribes_then_sets_content_filtering(azure: AzureStandIn, tmp_path: Path) -> None:
    platform = make_platform(azure, tmp_path, registry="azureml-meta")
    endpoint = platform.deploy(DeploySpec(model=LLAMA, endpoint="llama-api"))

    unversioned = f"azureml://registries/azureml-meta/models/{LLAMA}"
    (subscription,) = azure.calls("PUT", "/marketplaceSubscriptions/")
    assert subscription.body["properties"]["modelId"] == unversioned
    serverless = azure.calls("PUT", "/serverlessEndpoints/llama-api")
    assert serverless[0].body["properties"]["modelSettings"]["modelId"] == unversioned
    assert azure.requests.index(subscription) < azure.requests.index(serverless[0]), "subscribed first"
    assert serverless[-1].body["properties"]["contentSafety"] == {"contentSafetyStatus": "Enabled"}
    assert serverless[-1].query["api-version"] == "2024-10-01", "content filtering goes through ARM directly"
    assert azure.calls("POST", "/serverlessEndpoints/llama-api/listKeys")
    assert endpoint.url == "https://llama-api.eastus.models.ai.azure.com"
    assert endpoint.key.get_secret_value() == "standin-primary-key"


# ---------------------------------------------------------------------------- quota


def test_quota_warns_when_cores_exceed_free_quota(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    card = platform.get_model(BERT)
    check = platform.check_quota("Standard_NC24s_v3", 1, model=card)

    assert not check.ok
    assert "1 × Standard_NC24s_v3 needs 24 standardNCSv3Family cores but only 12 of 24 are free" in check.message
    assert any("Standard_NC6s_v3" in s for s in check.suggestions), "a smaller size that fits"
    assert any("shared quota" in s for s in check.suggestions), "the model allows shared quota"
    assert platform.check_quota("Standard_NC6s_v3", 2, model=card).ok
    fewer = platform.check_quota("Standard_NC6s_v3", 3)
    assert not fewer.ok and "Use 2 instances of Standard_NC6s_v3 instead of 3" in fewer.suggestions
    options = {o.name: o for o in platform.compute_options("finetune")}
    assert options["gpu-cluster"].label == "gpu-cluster (cluster, Standard_NC24s_v3)"
    assert options["Standard_NC24s_v3"].free_instances == 0 and options["Standard_NC6s_v3"].free_instances == 2
    assert options["Standard_DS3_v2"].free_instances == 25
    (usages,) = azure.calls("GET", "/locations/eastus/usages")[:1]
    assert usages.path == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/locations/eastus/usages"
    assert azure.calls("GET", "/locations/eastus/vmSizes")


# ---------------------------------------------------------------------------- import


def test_import_submits_import_model_and_reads_the_registered_model(
        azure: AzureStandIn, worker_runtime: tuple[Runtime, RecordingNotifier]) -> None:
    from workers.jobs import poll_job, run_job

    rt, _ = worker_runtime
    spec = ImportSpec(model_id="microsoft/phi-2", task=Task.TEXT_GENERATION)
    job_id = ledger_job(rt, "import", spec.model_dump(mode="json"))
    external_id = run_job(job_id)["external_id"]

    node = node_of(azure.job_body(external_id))
    assert node["componentId"].endswith("/components/import_model/versions/0.0.40")
    assert (literal(node, "model_id"), literal(node, "task_name"), literal(node, "compute")) == (
        "microsoft/phi-2", "text-generation", "serverless")
    azure.resources[f"{WORKSPACE_PATH}/models/microsoft-phi-2/versions/1".lower()] = {
        "id": f"{WORKSPACE_PATH}/models/microsoft-phi-2/versions/1", "name": "1",
        "properties": {"modelType": "mlflow_model", "tags": {"task": "text-generation"}, "properties": {},
                       "flavors": {}}}
    azure.set_job(external_id, "Completed")
    assert poll_job(job_id)["output_model"] == "microsoft-phi-2:1"


# ---------------------------------------------------------------------------- errors


def test_throttled_and_unavailable_calls_are_retried(azure: AzureStandIn, platform: AzureMLPlatform,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    azure.fail("PUT", r"/jobs/", 429, times=2)
    outcome = platform.run_finetune(finetune_spec(), lambda progress: None)
    puts = azure.calls("PUT", "/jobs/")
    assert len(puts) == 3 and puts[-1].path.endswith(outcome.external_id), "azure-core's retry policy repeats 429s"

    monkeypatch.setattr(errors, "BACKOFF_SECONDS", (0.2, 0.2, 0.2))
    failures = 5  # one more than the SDK's own attempts for jobs.get (4 in azure-ai-ml 1.35.2)
    azure.fail("GET", rf"/jobs/{outcome.external_id}$", 503, times=failures, code="ServiceUnavailable",
               message="The service is temporarily unavailable")
    assert platform.job_status(outcome.external_id).state == JobState.QUEUED
    assert len(azure.calls("GET", f"/jobs/{outcome.external_id}")) == failures + 1
    assert "retrying in" in caplog.text, "once the SDK gave up, fmbot waited and asked again"


def test_permission_errors_name_the_missing_role(azure: AzureStandIn, platform: AzureMLPlatform) -> None:
    azure.fail("GET", r"/usages$", 403, code="AuthorizationFailed",
               message="The client does not have authorization to perform action 'Microsoft.MachineLearningServices/locations/usages/read'")
    with pytest.raises(PlatformError) as failure:
        platform.check_quota("Standard_NC6s_v3", 1)
    assert "may not read compute quota" in str(failure.value)
    assert "Reader on the subscription" in str(failure.value)


# ---------------------------------------------------------------------------- the CLI, unchanged


def test_cli_commands_run_on_azureml_with_default_credential(azure: AzureStandIn, redis_server, redis: Redis,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Only environment variables: DefaultAzureCredential gets its token from the stand-in's managed
    identity endpoint, the SDK finds the cloud through ARM_CLOUD_METADATA_URL."""
    from rq import SimpleWorker

    from bot.cli import main
    from bot.bootstrap import build_runtime
    from bot.settings import Settings

    for name, value in {**azure.environment(), "FMBOT_PLATFORM": "azureml", "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
                        "AZURE_RESOURCE_GROUP": RESOURCE_GROUP, "AZUREML_WORKSPACE": WORKSPACE,
                        "REDIS_URL": redis_server.url, "FMBOT_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FMBOT_POLL_INTERVAL", "0")

    def cli(*argv: str) -> object:
        assert main([*argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    assert {m["name"] for m in cli("models", "uncased")} == {BERT}
    assert cli("card", BERT)["finetune_compute"] == ["Standard_NC6s_v3", "Standard_NC24s_v3"]
    token_requests = azure.calls("GET", "/msi/token")
    assert token_requests and token_requests[0].headers["X-IDENTITY-HEADER"], "managed identity was used"
    assert redis.exists(CATALOG_KEY)

    queued = cli("finetune", BERT, "--task", "text-classification", "--train", "azureml:sst2-train:1",
                 "--map", "sentence1=text,label=sentiment", "--epochs", "1")
    assert queued["state"] == "queued"
    evaluation = cli("evaluate", BERT, "--task", "text-classification", "--test", "azureml:sst2-test:2",
                     "--map", "sentence1=text,label=sentiment")

    rt = build_runtime(Settings())
    runtime.install(rt)
    try:
        SimpleWorker([rt.queue], connection=rt.redis, serializer=rt.queue.serializer).work(burst=True)
        external_id = cli("status", queued["id"])["external_id"]
        assert external_id and len(azure.calls("PUT", "/jobs/")) == 2, "one fine-tune and one evaluation"
        evaluation_node = node_of(azure.job_body(cli("status", evaluation["id"])["external_id"]))
        assert evaluation_node["componentId"].endswith("/components/model_evaluation_pipeline/versions/0.0.33")
        assert literal(node_of(azure.job_body(external_id)), "num_train_epochs") == "1"

        azure.set_job(external_id, "Completed")
        SimpleWorker([rt.queue], connection=rt.redis, serializer=rt.queue.serializer).work(burst=True, with_scheduler=True)
    finally:
        runtime.install(None)
    done = cli("status", queued["id"])
    assert done["state"] == "completed" and done["output_model"] == f"{BERT}-ft:1"

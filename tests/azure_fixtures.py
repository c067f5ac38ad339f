"""Pytest fixtures for the Azure ML tests: one stand-in, one Azurite and one MLflow per test session.

Import the fixtures into a test module (`from tests.azure_fixtures import *`). Each test gets the
stand-in reset to the vendored contents and the registry seeded with the vendored model specs, in
both layouts; a test that needs Azurite or MLflow and finds it not started fails with the reason.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import SimpleWorker

from platforms.azureml import AzureMLPlatform
from tests.azure_services import AzureServices
from tests.azure_standin import (
    BLOB_CONTAINER,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    WORKSPACE,
    AzureStandIn,
    StandInCredential,
)
from workers import runtime
from workers.ledger import JobRecord, Ledger
from workers.notifier import JobEvent
from workers.queues import job_queue
from workers.runtime import Runtime

# The registry as the tests see it: each vendored model in its older layout as the previous
# version, and in the system_metadata layout as the latest.
OLDER = {"bert-base-uncased": "18", "gpt2": "17", "Phi-4": "7"}


@pytest.fixture(scope="session")
def azure_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AzureStandIn, AzureServices]]:
    standin = AzureStandIn().start()
    services = AzureServices(tmp_path_factory.mktemp("azure-services"), standin.cert_path, standin.key_path).start()
    if services.azurite:
        services.create_container(BLOB_CONTAINER)
        standin.blobs = services.blob_service
    standin.mlflow_url = services.mlflow.url if services.mlflow else None
    yield standin, services
    services.stop()
    standin.stop()


@pytest.fixture
def azure(azure_session: tuple[AzureStandIn, AzureServices], monkeypatch: pytest.MonkeyPatch) -> AzureStandIn:
    standin, services = azure_session
    standin.reset()
    for name, older in OLDER.items():
        standin.add_model(name, "tags", version=older)
        standin.add_model(name, "system_metadata")
    standin.add_compute("gpu-cluster", "Standard_NC24ads_A100_v4")
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD", raising=False)
    # A few SDK-internal clients ignore `connection_verify`; like on a real machine they trust what requests trusts.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.cert_path))
    for name, value in services.environment().items():
        monkeypatch.setenv(name, value)
    return standin


@pytest.fixture
def services(azure_session: tuple[AzureStandIn, AzureServices]) -> AzureServices:
    return azure_session[1]


def make_platform(standin: AzureStandIn, tmp_path: Path, redis: Redis | None = None,
                  registry: str = "azureml") -> AzureMLPlatform:
    return AzureMLPlatform.from_settings(
        subscription_id=SUBSCRIPTION, resource_group=RESOURCE_GROUP, workspace=WORKSPACE, registry=registry,
        data_dir=tmp_path, credential=StandInCredential(), cloud=standin.cloud_name,
        cloud_metadata=standin.cloud_metadata(), connection_verify=str(standin.cert_path), redis=redis)


@pytest.fixture
def platform(azure: AzureStandIn, tmp_path: Path, redis: Redis) -> AzureMLPlatform:
    return make_platform(azure, tmp_path, redis)


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


def drain(rt: Runtime, *, scheduler: bool = False) -> None:
    """Runs what the handlers queued, in a real RQ worker (in-process, so the stand-in sees its calls)."""
    SimpleWorker([rt.queue], connection=rt.redis, serializer=rt.queue.serializer).work(
        burst=True, with_scheduler=scheduler)


def log_run(services: AzureServices, job_name: str, metrics: dict[str, float], experiment: str = "fmbot") -> None:
    """What a pipeline step does on Azure: an MLflow run under the job (`mlflow.rootRunId`), its metrics logged."""
    services.require("mlflow")
    base = f"{services.mlflow.url}/api/2.0/mlflow"

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{base}/{path}", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"{}")

    try:
        with urllib.request.urlopen(f"{base}/experiments/get-by-name?experiment_name={experiment}", timeout=30) as a:
            experiment_id = json.loads(a.read())["experiment"]["experiment_id"]
    except urllib.error.HTTPError:
        experiment_id = post("experiments/create", {"name": experiment})["experiment_id"]
    run = post("runs/create", {"experiment_id": experiment_id, "tags": [{"key": "mlflow.rootRunId", "value": job_name}]})
    run_id = run["run"]["info"]["run_id"]
    post("runs/log-batch", {"run_id": run_id, "metrics": [{"key": k, "value": v, "timestamp": 1, "step": 0}
                                                          for k, v in metrics.items()]})
    post("runs/update", {"run_id": run_id, "status": "FINISHED"})

__all__ = ["azure_session", "azure", "services", "platform", "worker_runtime", "make_platform", "drain", "log_run",
           "RecordingNotifier", "OLDER"]

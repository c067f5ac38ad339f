"""A local HTTPS stand-in of Azure Resource Manager and the Azure ML registry, built from Azure's own files.

Everything it serves comes from `tests/data/azure/` (see its SOURCES.md), vendored byte for byte:
- registry components are the azureml-assets `spec.yaml` files, served as `componentSpec`, so
  azure-ai-ml parses their real inputs (`optional`, `type`, `enum`, `default`) and its own
  validation runs on what fmbot builds;
- registry model versions are the azureml-assets model `spec.yaml` files, in both layouts the
  registry has served: tags + properties, and `system_metadata` (sent under
  `properties.system_metadata`, the key azure-ai-ml itself writes);
- usages and VM sizes are the 2024-10-01 REST examples `Usage/list.json` and
  `VirtualMachineSize/list.json`; the subscription, resource group and workspace are the ones those
  examples name, so their workspace- and cluster-scoped rows mean what they say. GPU sizes the
  examples lack are added in the same shape (`GPU_SIZES`), with the retired NC v3 family that jobs
  and deployments must never name;
- endpoint, deployment, serverless endpoint and marketplace subscription bodies follow the REST
  examples of the same name.

It refuses what Azure refuses: a required input missing, a value outside an enum, an unknown input,
a VM size that is not listed or is retired (component defaults included), a managed deployment
whose cores with Azure's 20% upgrade reserve exceed the free quota, a serverless endpoint for a
model that is not offered as serverless (MaaS), a marketplace model without a subscription.
Long-running operations take `lro_polls` polls. MLflow calls under the workspace's tracking URI are
forwarded to a real MLflow server, and blob traffic goes to Azurite (see `tests/azure_services.py`).
"""

from __future__ import annotations

import base64
import copy
import functools
import datetime as dt
import ipaddress
import json
import math
import re
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import LocalServer
from tests.azure_services import AZURITE_ACCOUNT, AZURITE_KEY

DATA = Path(__file__).parent / "data" / "azure"
# The identifiers the vendored Usage example names (its workspace- and cluster-scoped rows use them).
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg"
WORKSPACE = "demo_workspace1"
REGISTRY = "azureml"
LOCATION = "eastus"
IDENTITY_HEADER = "standin-identity-header"
PROVIDER = "providers/Microsoft.MachineLearningServices"
WORKSPACE_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/{PROVIDER}/workspaces/{WORKSPACE}"
REGISTRY_PATH = re.compile(rf"/mferp/managementfrontend/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/"
                           rf"{PROVIDER}/registries/([^/]+)(/.*)", re.IGNORECASE)
LRO_COLLECTIONS = ("onlineendpoints", "deployments", "serverlessendpoints", "marketplacesubscriptions")
COMPONENTS = ("text_classification_pipeline", "token_classification_pipeline", "question_answering_pipeline",
              "summarization_pipeline", "translation_pipeline", "text_generation_pipeline", "chat_completion_pipeline",
              "import_model", "model_prediction", "compute_metrics", "model_evaluation_pipeline")
MODELS = ("bert-base-uncased", "gpt2", "Phi-4")
BLOB_CONTAINER = "azureml-blobstore-standin"


def _size(name: str, family: str, cores: int, gpus: int, memory: float) -> dict[str, Any]:
    """A size shaped like the entries of `VirtualMachineSize/list.json`."""
    return {"name": name, "family": family, "vCPUs": cores, "gpus": gpus, "osVhdSizeMB": 1047552,
            "maxResourceVolumeMB": 360448, "memoryGB": memory, "lowPriorityCapable": True, "premiumIO": True,
            "supportedComputeTypes": ["AmlCompute", "MIR"]}


GPU_SIZES = [
    _size("Standard_NC4as_T4_v3", "standardNCASv3_T4Family", 4, 1, 28.0),
    _size("Standard_NC16as_T4_v3", "standardNCASv3_T4Family", 16, 1, 110.0),
    _size("Standard_NC64as_T4_v3", "standardNCASv3_T4Family", 64, 4, 440.0),
    _size("Standard_NC24ads_A100_v4", "standardNCADSA100v4Family", 24, 1, 220.0),
    _size("Standard_NC96ads_A100_v4", "standardNCADSA100v4Family", 96, 4, 880.0),
]
# Retired by Azure (NC v3 on 30 September 2025): still listed in some regions, refused for new work.
RETIRED_SIZES = [
    _size("Standard_NC6s_v3", "standardNCSv3Family", 6, 1, 112.0),
    _size("Standard_NC12s_v3", "standardNCSv3Family", 12, 2, 224.0),
    _size("Standard_NC24s_v3", "standardNCSv3Family", 24, 4, 448.0),
    _size("Standard_NC24rs_v3", "standardNCSv3Family", 24, 4, 448.0),
]
RETIRED_FAMILIES = {"standardncsv3family"}


def _usage(family: str, current: int, limit: int) -> dict[str, Any]:
    """A subscription-scoped dedicated row shaped like those of `Usage/list.json`."""
    words = f"Standard {family} Family Cluster Dedicated vCPUs"
    return {"id": f"/subscriptions/{SUBSCRIPTION}/usages/Standard_{family}_Family_Cluster_Dedicated_vCPUs",
            "type": "Microsoft.MachineLearningServices/vmFamily/usages", "currentValue": current, "limit": limit,
            "name": {"localizedValue": words, "value": words}, "unit": "Count"}


GPU_USAGES = [_usage("NCASv3_T4", 16, 64), _usage("NCADSA100v4", 0, 96)]


def rest_example(name: str) -> dict[str, Any]:
    """The 200 (else 201) response body of a vendored REST example."""
    responses = json.loads((DATA / "rest" / f"{name}.json").read_text())["responses"]
    return copy.deepcopy((responses.get("200") or responses["201"])["body"])


@functools.cache
def _parsed(kind: str, name: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load((DATA / kind / f"{name}.yaml").read_text(), Loader=loader)


def load_spec(kind: str, name: str) -> dict[str, Any]:
    """A vendored spec, parsed once per process (the pipeline specs are large), as a fresh copy."""
    return copy.deepcopy(_parsed(kind, name))


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate that is its own CA, for 127.0.0.1 and Azure Storage's blob hosts (served by Azurite)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
             x509.DNSName(f"{AZURITE_ACCOUNT}.blob.core.windows.net"), x509.DNSName("*.blob.core.windows.net")]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def token_for(scope: str) -> str:
    """An unsigned JWT whose audience is the scope's resource: the SDK reads `aud` before submitting a job."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    audience = scope.removesuffix("/.default")
    expires = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
    claims = {"aud": audience, "tid": "11111111-2222-3333-4444-555555555555", "oid": "fmbot-test", "exp": expires}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


class StandInCredential:
    """A credential handing out stand-in tokens, for clients built in the test process."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(token_for(scopes[0]), int(dt.datetime.now(dt.UTC).timestamp()) + 3600)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _system_data() -> dict[str, Any]:
    return {"createdAt": _now(), "createdBy": "fmbot", "createdByType": "User",
            "lastModifiedAt": _now(), "lastModifiedBy": "fmbot", "lastModifiedByType": "User"}


def _registry_text(value: Any) -> str:
    """Registry tags and properties are strings: nested YAML values arrive as Python literals (the
    foundation-model notebooks read them back with `ast.literal_eval`)."""
    return value if isinstance(value, str) else str(value)


def offers_serverless(spec: dict[str, Any]) -> bool:
    """MaaS: `ServerlessMaaS` among the deployment options (system_metadata), or the older tags."""
    options = (spec.get("system_metadata") or {}).get("deploymentOptions") or []
    tags = spec.get("tags") or {}
    return ("ServerlessMaaS" in options or "ServerlessMaaS" in str(tags.get("deploymentOptions", ""))
            or str(tags.get("maas-inference", "")).lower() == "true")


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Failure:
    method: str
    path: re.Pattern[str]
    status: int
    times: int
    body: dict[str, Any]


@dataclass
class AzureStandIn:
    """Routes are matched on the lower-cased path; resources live in `resources` keyed the same way."""

    mlflow_url: str | None = None
    lro_polls: int = 2
    marketplace_status: str = "Subscribed"
    requests: list[Request] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry_models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    model_specs: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry_components: dict[str, dict[str, Any]] = field(default_factory=dict)
    usages: list[dict[str, Any]] = field(default_factory=list)
    vm_sizes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    operations: dict[str, int] = field(default_factory=dict)
    endpoint_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # endpoint path -> its keys
    blobs: Callable[[], Any] | None = None  # a client of Azurite as the workspace's storage account
    _refusals: list[str] = field(default_factory=list)
    cloud_name: str = field(default_factory=lambda: f"FmbotStandIn{uuid.uuid4().hex[:8]}")
    server: LocalServer | None = None
    _folder: tempfile.TemporaryDirectory | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AzureStandIn:
        self._folder = tempfile.TemporaryDirectory(prefix="azure-standin-")
        self.cert_path, self.key_path = _certificate(Path(self._folder.name))
        self.server = LocalServer(dict.fromkeys(("GET", "PUT", "POST", "DELETE", "PATCH"), self._handle),
                                  tls=(self.cert_path, self.key_path), protocol="HTTP/1.1")
        self.reset()
        return self

    def reset(self) -> None:
        """Back to the vendored contents, so one stand-in serves a whole test session."""
        with self._lock:
            self.requests.clear()
            self.resources.clear()
            self.registry_models.clear()
            self.model_specs.clear()
            self.registry_components.clear()
            self.failures.clear()
            self.operations.clear()
            self.endpoint_keys.clear()
            self._refusals.clear()
            self.lro_polls, self.marketplace_status = 2, "Subscribed"
            for name in COMPONENTS:
                self.add_component(load_spec("components", name))
            self.vm_sizes = rest_example("VirtualMachineSize_list")["value"] + copy.deepcopy(GPU_SIZES + RETIRED_SIZES)
            self.usages = rest_example("Usage_list")["value"] + copy.deepcopy(GPU_USAGES)
            self._add_datastore()

    def stop(self) -> None:
        if self.server:
            self.server.stop()
        if self._folder:
            self._folder.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}/"

    def cloud_metadata(self) -> dict[str, str]:
        """`MLClient(cloud=..., cloud_metadata=...)` for this stand-in."""
        return {"azure_portal": self.url, "resource_manager": self.url, "active_directory": self.url,
                "aml_resource_id": self.url, "storage_endpoint": "core.windows.net",
                "registry_discovery_endpoint": self.url}

    def environment(self) -> dict[str, str]:
        """The variables that point an unmodified process (DefaultAzureCredential included) here."""
        return {
            "REQUESTS_CA_BUNDLE": str(self.cert_path),
            "ARM_CLOUD_METADATA_URL": f"{self.url}metadata/endpoints?api-version=2022-09-01",
            "REGISTRY_DISCOVERY_ENDPOINT_URL": self.url,
            "IDENTITY_ENDPOINT": f"{self.url}msi/token",
            "IDENTITY_HEADER": IDENTITY_HEADER,
        }

    # ------------------------------------------------------------------ vendored contents

    def add_component(self, spec: dict[str, Any], registry: str = REGISTRY) -> None:
        """A registry component version shaped like `Registries_ComponentVersion`, its spec the vendored YAML."""
        name, version = spec["name"], str(spec["version"])
        if spec.get("type") == "command" and not str(spec.get("code", "azureml:")).startswith("azureml:"):
            # Publishing uploads a command component's local `code` folder; the registry serves its asset id.
            spec = {**spec, "code": f"azureml://registries/{registry}/codes/{name}-code/versions/{version}"}
        self.registry_components[name] = {
            "id": f"azureml://registries/{registry}/components/{name}/versions/{version}",
            "name": version, "type": "Microsoft.MachineLearningServices/registries/components/versions",
            "systemData": _system_data(),
            "properties": {"description": spec.get("description", ""), "tags": spec.get("tags") or {},
                           "properties": {}, "isAnonymous": False, "componentSpec": spec},
        }

    def add_model(self, name: str, layout: str = "system_metadata", *, registry: str = REGISTRY,
                  version: str | None = None) -> str:
        """A vendored model spec (`tags` or `system_metadata` layout) as a registry model version,
        shaped like `Registry/ModelVersion/get.json`. Returns its asset id."""
        spec = load_spec("models", f"{name}.{layout}")
        version = version or str(spec["version"])
        asset = f"azureml://registries/{registry}/models/{spec['name']}/versions/{version}"
        body = rest_example("RegistryModelVersion_get")
        body |= {"id": asset, "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
                 "systemData": _system_data()}
        body["properties"] |= {
            "description": spec.get("description", ""),
            "tags": {k: _registry_text(v) for k, v in (spec.get("tags") or {}).items()},
            "properties": {k: _registry_text(v) for k, v in (spec.get("properties") or {}).items()},
            "flavors": {}, "modelType": "mlflow_model", "modelUri": f"{asset}/mlflow"}
        if "system_metadata" in spec:
            body["properties"]["system_metadata"] = spec["system_metadata"]
        with self._lock:
            self.registry_models.setdefault(spec["name"], []).append(body)
            self.model_specs[asset.rsplit("/versions/", 1)[0].lower()] = spec
        return asset

    def add_compute(self, name: str, vm_size: str, *, max_nodes: int = 4) -> None:
        """An AmlCompute cluster shaped like `Compute_Get`."""
        path = f"{WORKSPACE_PATH}/computes/{name}"
        self.resources[path.lower()] = {
            "id": path, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": LOCATION, "systemData": _system_data(),
            "properties": {"computeType": "AmlCompute", "computeLocation": LOCATION, "provisioningState": "Succeeded",
                           "properties": {"vmSize": vm_size, "vmPriority": "Dedicated",
                                          "scaleSettings": {"maxNodeCount": max_nodes, "minNodeCount": 0,
                                                            "nodeIdleTimeBeforeScaleDown": "PT120S"}}},
        }

    def _add_datastore(self) -> None:
        """The workspace's default blob datastore, on Azurite's development account."""
        path = f"{WORKSPACE_PATH}/datastores/workspaceblobstore"
        self.resources[path.lower()] = {
            "id": path, "name": "workspaceblobstore", "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "systemData": _system_data(),
            "properties": {"datastoreType": "AzureBlob", "accountName": AZURITE_ACCOUNT, "containerName": BLOB_CONTAINER,
                           "endpoint": "core.windows.net", "protocol": "https", "isDefault": True,
                           "credentials": {"credentialsType": "AccountKey"}, "description": "", "tags": {}}}

    def set_usage(self, name_fragment: str, *, current: int | None = None, limit: int | None = None) -> None:
        """Changes every usage row whose name contains `name_fragment` (e.g. "NCASv3_T4 Family Cluster Dedicated")."""
        for row in self.usages:
            if name_fragment.lower() in row["name"]["value"].lower():
                if current is not None:
                    row["currentValue"] = current
                if limit is not None:
                    row["limit"] = limit

    def fail(self, method: str, path_regex: str, status: int, *, times: int = 1,
             code: str = "TooManyRequests", message: str = "Too many requests") -> None:
        self.failures.append(Failure(method, re.compile(path_regex, re.IGNORECASE), status, times,
                                     {"error": {"code": code, "message": message}}))

    def set_job(self, name: str, status: str, **properties: Any) -> None:
        with self._lock:
            job = self.resources[f"{WORKSPACE_PATH}/jobs/{name}".lower()]
            job["properties"]["status"] = status
            job["properties"].update(properties)

    def finish_evaluation(self, name: str, predictions: list[Any], ground_truth: list[Any], *,
                          written: tuple[str, ...] = ("predictions", "ground_truth")) -> None:
        """What a finished two-step evaluation leaves: model_prediction's files at the paths of the
        pipeline job's outputs (`PipelineJob/get.json` documents an output as jobOutputType, mode and
        uri), written as the component writes them (pandas `to_json(orient="records", lines=True)`,
        azureml-assets `model_prediction.py`): `predictions` per row, and the label column (the node's
        `label_column_name`) per row of ground truth. `written` leaves an output's file out."""
        import pandas as pd

        if self.blobs is None:
            raise RuntimeError("finish_evaluation writes to Azurite: start the stand-in with its blob service")
        with self._lock:
            job = self.resources[f"{WORKSPACE_PATH}/jobs/{name}".lower()]["properties"]
            documented = set(rest_example("PipelineJob_get")["properties"]["outputs"]["string"])
            for output in job.get("outputs", {}).values():
                assert set(output) <= documented, f"an output field PipelineJob/get.json does not document: {output}"
            node = next(n for n in job["jobs"].values() if "/components/model_prediction/" in n["componentId"])
            label = node["inputs"]["label_column_name"]["value"]
        files = {"predictions": pd.DataFrame({"predictions": predictions}),
                 "ground_truth": pd.DataFrame({label: ground_truth})}
        container = self.blobs().get_container_client(BLOB_CONTAINER)
        for output in written:
            uri = job["outputs"][output]["uri"]
            path = re.fullmatch(r"azureml://datastores/workspaceblobstore/paths/(.+)", uri)[1]
            container.upload_blob(path, files[output].to_json(orient="records", lines=True).encode(), overwrite=True)
        self.set_job(name, "Completed")

    def job_body(self, name: str) -> dict[str, Any]:
        return next(r.body for r in self.requests if r.method == "PUT" and r.path.lower().endswith(f"/jobs/{name.lower()}"))

    def calls(self, method: str, fragment: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and fragment.lower() in r.path.lower()]

    def refusals(self) -> list[str]:
        """What the stand-in refused, in order (what Azure would have answered with a 4xx)."""
        return list(self._refusals)

    # ------------------------------------------------------------------ serving

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = urllib.parse.unquote(parsed.path)
        request = Request(handler.command, path, query, body, dict(handler.headers))
        with self._lock:
            self.requests.append(request)
            try:
                status, payload, headers = self._failure(request) or self._route(request, raw)
            except Refusal as refusal:
                self._refusals.append(refusal.message)
                status, payload, headers = refusal.status, {"error": {"code": refusal.code, "message": refusal.message}}, {}
        data = payload if isinstance(payload, bytes) else b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _failure(self, request: Request) -> tuple[int, Any, dict[str, str]] | None:
        """Retry-After as Azure sends it on a 429/503; 0 would make azure-core fall back to its own backoff."""
        for failure in self.failures:
            if failure.times > 0 and failure.method == request.method and failure.path.search(request.path):
                failure.times -= 1
                return failure.status, failure.body, {"Retry-After": "0.05"} if failure.status in (429, 503) else {}
        return None

    def _route(self, r: Request, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        path = r.path.rstrip("/").lower()
        if path == "/metadata/endpoints":
            return 200, [{"name": self.cloud_name, "portal": self.url, "resourceManager": self.url,
                          "authentication": {"loginEndpoint": self.url, "audiences": [self.url]},
                          "suffixes": {"storage": "core.windows.net"}}], {}
        if path == "/msi/token":
            if r.headers.get("X-IDENTITY-HEADER") != IDENTITY_HEADER:
                return 401, {"error": "missing identity header"}, {}
            expires = int(dt.datetime.now(dt.UTC).timestamp()) + 3600
            return 200, {"access_token": token_for(r.query.get("resource", "")), "expires_on": str(expires),
                         "resource": r.query.get("resource", ""), "token_type": "Bearer"}, {}
        if path.startswith(f"/mlflow/v1.0{WORKSPACE_PATH}/api/2.0/mlflow/".lower()):
            return self._mlflow(r, raw)
        if m := re.fullmatch(r"/operations/([^/]+)", path):
            return self._operation(m[1])
        if m := re.fullmatch(r"/registrymanagement/v1.0/registries/([^/]+)/discovery", path):
            return 200, {"registryName": m[1], "primaryRegion": LOCATION, "regions": [LOCATION],
                         "subscriptionId": SUBSCRIPTION, "resourceGroup": RESOURCE_GROUP,
                         "primaryRegionResourceProviderUri": self.url}, {}
        if m := REGISTRY_PATH.fullmatch(r.path.rstrip("/")):
            return self._registry(r, m[1], m[2])
        if re.fullmatch(rf"/subscriptions/{SUBSCRIPTION}/{PROVIDER}/locations/[^/]+/usages".lower(), path):
            return 200, {"value": self.usages}, {}
        if re.fullmatch(rf"/subscriptions/{SUBSCRIPTION}/{PROVIDER}/locations/[^/]+/vmsizes".lower(), path):
            return 200, {"value": self.vm_sizes}, {}
        if path == WORKSPACE_PATH.lower():
            return 200, self._workspace(), {}
        if path.startswith(WORKSPACE_PATH.lower() + "/"):
            return self._workspace_child(r, path)
        return 404, {"error": {"code": "NotFound", "message": f"the stand-in has no route for {r.path}"}}, {}

    def _lro(self, headers_for: str = "Azure-AsyncOperation") -> dict[str, str]:
        """azure-core waits its own default (30 s) when Retry-After is 0, so a fraction of a second is
        sent; the SDK reads a delete's (Location) Retry-After as an integer, so those get 1 and one poll."""
        operation = uuid.uuid4().hex
        if headers_for == "Location":
            self.operations[operation] = 1
            return {headers_for: f"{self.url}operations/{operation}", "Retry-After": "1"}
        self.operations[operation] = self.lro_polls
        return {headers_for: f"{self.url}operations/{operation}", "Retry-After": "0.05"}

    def _operation(self, operation: str) -> tuple[int, Any, dict[str, str]]:
        left = self.operations.get(operation, 0)
        if left > 0:
            self.operations[operation] = left - 1
            return 200, {"status": "InProgress", "startTime": _now()}, {"Retry-After": "0.05"}
        return 200, {"status": "Succeeded", "startTime": _now(), "endTime": _now()}, {}

    def _workspace(self) -> dict[str, Any]:
        port = self.server.port
        return {"id": WORKSPACE_PATH, "name": WORKSPACE, "type": "Microsoft.MachineLearningServices/workspaces",
                "location": LOCATION, "kind": "Default", "identity": {"type": "SystemAssigned"},
                "sku": {"name": "Basic", "tier": "Basic"}, "systemData": _system_data(),
                "properties": {"friendlyName": WORKSPACE, "provisioningState": "Succeeded",
                               "discoveryUrl": f"{self.url}discovery",
                               "mlFlowTrackingUri": f"azureml://127.0.0.1:{port}/mlflow/v1.0{WORKSPACE_PATH}"}}

    def _mlflow(self, r: Request, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        """Azure ML's MLflow endpoint is MLflow's REST API under the workspace path: forwarded as it is."""
        if not self.mlflow_url:
            return 503, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "no MLflow server behind the stand-in"}, {}
        rest = r.path.split("/api/2.0/mlflow/", 1)[1]
        query = urllib.parse.urlencode(r.query)
        forward = urllib.request.Request(f"{self.mlflow_url}/api/2.0/mlflow/{rest}{'?' + query if query else ''}",
                                         data=raw or None, method=r.method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(forward, timeout=30) as answer:
                return answer.status, answer.read(), {}
        except urllib.error.HTTPError as error:
            return error.code, error.read(), {}

    # ------------------------------------------------------------------ registry

    def _registry(self, r: Request, registry: str, rest: str) -> tuple[int, Any, dict[str, str]]:
        """Every registry name serves the same models and components: tests use one registry at a time."""
        if rest.lower() == "/models":
            containers = [{"id": f"azureml://registries/{registry}/models/{name}", "name": name,
                           "type": "Microsoft.MachineLearningServices/registries/models", "systemData": _system_data(),
                           "properties": {"description": versions[-1]["properties"]["description"],
                                          "tags": {}, "properties": {}, "latestVersion": versions[-1]["name"]}}
                          for name, versions in self.registry_models.items()]
            return 200, {"value": containers}, {}
        if m := re.fullmatch(r"/models/([^/]+)/versions(?:/([^/]+))?", rest):
            versions = self.registry_models.get(m[1])
            if not versions:
                return 404, {"error": {"code": "UserError", "message": f"Model container {m[1]} not found"}}, {}
            if m[2] is None:
                newest_first = list(reversed(versions))
                return 200, {"value": newest_first[: int(r.query.get("$top", len(versions)))]}, {}
            found = [v for v in versions if v["name"] == m[2]]
            return (200, found[0], {}) if found else (404, {"error": {"code": "UserError", "message": "not found"}}, {})
        if m := re.fullmatch(r"/components/([^/]+)/versions(?:/([^/]+))?", rest):
            component = self.registry_components.get(m[1])
            if component is None:
                return 404, {"error": {"code": "UserError", "message": f"Component {m[1]} not found"}}, {}
            if m[2] and m[2] != component["name"]:
                return 404, {"error": {"code": "UserError", "message": f"Component {m[1]} has no version {m[2]}"}}, {}
            return 200, (component if m[2] else {"value": [component]}), {}
        return 404, {"error": {"code": "NotFound", "message": f"no registry route {rest}"}}, {}

    # ------------------------------------------------------------------ workspace

    def _workspace_child(self, r: Request, path: str) -> tuple[int, Any, dict[str, str]]:
        rest = path[len(WORKSPACE_PATH):]
        parts = rest.strip("/").split("/")
        if rest.endswith("/listkeys") and r.method == "POST":
            if path[: -len("/listkeys")] not in self.resources:
                return 404, {"error": {"code": "NotFound", "message": "no such endpoint"}}, {}
            return 200, self._keys(path[: -len("/listkeys")]), {}
        if rest.endswith("/regeneratekeys") and r.method == "POST" and "/onlineendpoints/" in rest:
            return self._regenerate_keys(r, path[: -len("/regeneratekeys")])
        if rest.endswith("/listsecrets") and r.method == "POST":
            return 200, {"secretsType": "AccountKey", "key": AZURITE_KEY}, {}
        if rest.endswith("/cancel") and r.method == "POST":
            job = self.resources.get(path[: -len("/cancel")])
            if job is None:
                return 404, {"error": {"code": "NotFound", "message": "no such job"}}, {}
            job["properties"]["status"] = "Canceled"
            return 202, None, self._lro("Location")
        if r.method == "PUT":
            return self._put(r, path, parts)
        if r.method == "DELETE":
            if self.resources.pop(path, None) is None:
                return 204, None, {}
            for key in [k for k in self.resources if k.startswith(path + "/")]:
                del self.resources[key]
            return 202, None, self._lro("Location")
        if r.method == "GET":
            if path in self.resources:
                return 200, self.resources[path], {}
            if parts == ["data"]:
                return 200, {"value": self._data_containers(path, r.query)}, {}
            if len(parts) % 2 == 1:
                prefix = path + "/"
                children = [v for k, v in self.resources.items()
                            if k.startswith(prefix) and "/" not in k[len(prefix):]]
                if r.query.get("listViewType") == "ActiveOnly":
                    children = [c for c in children if not c["properties"].get("isArchived")]
                if parts[-1] == "versions" and r.query.get("$orderBy", "").startswith("createdtime desc"):
                    children = list(reversed(children))[: int(r.query.get("$top", len(children)))]
                return 200, {"value": children}, {}
            return 404, {"error": {"code": "UserError", "message": f"{parts[-2]} {parts[-1]} not found"}}, {}
        return 405, {"error": {"code": "MethodNotAllowed", "message": r.method}}, {}

    def _keys(self, endpoint: str) -> dict[str, str]:
        """An endpoint's keys: the same pair for every endpoint until one is regenerated."""
        return self.endpoint_keys.setdefault(endpoint, {"primaryKey": "standin-primary-key",
                                                        "secondaryKey": "standin-secondary-key"})

    def _regenerate_keys(self, r: Request, endpoint: str) -> tuple[int, Any, dict[str, str]]:
        """`OnlineEndpoint/regenerateKeys.json`: a body of its fields, `keyType` Primary or Secondary
        (the swagger's enum), answered with its 202 and both its headers, then polled. The named key
        gets a new value: what the operation is for (the example says nothing of `keyValue`'s effect)."""
        example = json.loads((DATA / "rest" / "OnlineEndpoint_regenerateKeys.json").read_text())
        body = r.body if isinstance(r.body, dict) else {}
        unknown = set(body) - set(example["parameters"]["body"])
        if unknown or body.get("keyType") not in ("Primary", "Secondary"):
            raise Refusal(400, "UserError", f"regenerateKeys takes keyType Primary or Secondary, not {body}")
        if endpoint not in self.resources:
            raise Refusal(404, "NotFound", "no such endpoint")
        self._keys(endpoint)[f"{body['keyType'].lower()}Key"] = f"standin-{body['keyType'].lower()}-{uuid.uuid4().hex}"
        headers = self._lro("Location")  # the SDK reads this operation's Retry-After as an integer, as a delete's
        headers["Azure-AsyncOperation"] = headers["Location"]
        assert set(headers) - {"Retry-After"} == set(example["responses"]["202"]["headers"])
        return 202, None, headers

    def _put(self, r: Request, path: str, parts: list[str]) -> tuple[int, Any, dict[str, str]]:
        body = dict(r.body or {})
        collection, name = parts[-2], r.path.rstrip("/").split("/")[-1]
        properties = dict(body.get("properties") or {})
        if collection == "jobs":
            self._check_job(properties)
        if collection == "deployments":
            self._check_deployment(body, properties)
        if collection == "serverlessendpoints":
            self._check_serverless(properties)
        properties["provisioningState"] = "Succeeded"
        resource = {**body, "id": r.path, "name": name, "systemData": _system_data(), "properties": properties}
        if collection == "jobs":
            properties.setdefault("status", "NotStarted")
            properties["services"] = {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}"}}
        if collection == "onlineendpoints":
            base = f"https://{name}.{LOCATION}.inference.ml.azure.com"
            resource = self._shaped("OnlineEndpoint_get", resource)
            resource["properties"] |= {"scoringUri": f"{base}/score", "swaggerUri": f"{base}/swagger.json",
                                       "traffic": properties.get("traffic") or {}, "authMode": properties.get("authMode")}
        if collection == "serverlessendpoints":
            resource = self._shaped("ServerlessEndpoint_createOrUpdate", resource)
            resource["properties"] |= {"inferenceEndpoint": {"uri": f"https://{name}.{LOCATION}.models.ai.azure.com",
                                                             "headers": {}},
                                       "endpointState": "Online", "marketplaceSubscriptionId": None}
        if collection == "deployments":
            resource = self._shaped("ManagedOnlineDeployment_get", resource)
        if collection == "versions" and parts[0] == "data":
            resource = self._shaped("DataVersion_createOrUpdate", resource)
            resource["type"] = "Microsoft.MachineLearningServices/workspaces/data/versions"
        if collection == "marketplacesubscriptions":
            resource = self._shaped("MarketplaceSubscription_createOrUpdate", resource)
            refused = self.marketplace_status in ("Suspended", "Unsubscribed")
            resource["properties"] |= {"marketplaceSubscriptionStatus": self.marketplace_status,
                                       "provisioningState": "Failed" if refused else "Succeeded",
                                       "marketplacePlan": {"publisherId": "standin-publisher", "offerId": name,
                                                           "planId": name}}
        if "/models/" in path:
            properties.setdefault("flavors", {})
        created = path not in self.resources
        if not created and collection in ("onlineendpoints",):
            merged = self.resources[path]
            merged["properties"].update({k: v for k, v in resource["properties"].items() if v is not None})
            merged["tags"] = resource.get("tags", merged.get("tags"))
            resource = merged
        self.resources[path] = resource
        if collection in LRO_COLLECTIONS:
            return 201, resource, self._lro()
        return (201 if created else 200), resource, {}

    def _data_containers(self, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
        """`GET W/data`: one container per data asset name with a version, shaped on
        `DataContainer_list.json` (its documented fields only: no latest or next version)."""
        names: dict[str, list[dict[str, Any]]] = {}
        for key, version in self.resources.items():
            rest = key[len(path) + 1:].split("/") if key.startswith(path + "/") else []
            if len(rest) == 3 and rest[1] == "versions":
                names.setdefault(rest[0], []).append(version)
        containers = []
        for name, versions in names.items():
            if query.get("listViewType") == "ActiveOnly" and all(v["properties"].get("isArchived") for v in versions):
                continue
            container = rest_example("DataContainer_list")["value"][0]
            container.update(id=f"{path}/{name}", name=name, systemData=versions[0]["systemData"])
            container["properties"] = {"dataType": versions[0]["properties"].get("dataType"), "tags": {},
                                       "properties": {}}
            containers.append(container)
        return containers

    def _shaped(self, example: str, resource: dict[str, Any]) -> dict[str, Any]:
        """The REST example's body with what this request set: fields the example has and the request
        did not set keep their documented shape but carry no invented values."""
        shaped = rest_example(example)
        documented = shaped["properties"]
        shaped["properties"] = dict(resource["properties"])
        if "scaleSettings" in documented:  # what Azure fills in when a deployment names no scale settings
            shaped["properties"].setdefault("scaleSettings", documented["scaleSettings"])
        for key in ("id", "name", "systemData", "tags", "location", "sku", "identity", "kind"):
            if key in resource:
                shaped[key] = resource[key]
        shaped["location"] = resource.get("location") or LOCATION
        shaped["type"] = f"Microsoft.MachineLearningServices/workspaces/{resource['id'].split('/')[-2]}"
        return {k: v for k, v in shaped.items() if v is not None}

    # ------------------------------------------------------------------ what Azure refuses

    def _size_named(self, name: str) -> dict[str, Any]:
        size = next((s for s in self.vm_sizes if s["name"].lower() == name.lower()), None)
        if size is None:
            raise Refusal(400, "UserError", f"The VM size {name} is not available in {LOCATION}; "
                                            "see the location's vmSizes for the sizes offered")
        if size["family"].lower() in RETIRED_FAMILIES:
            raise Refusal(400, "UserError", f"The VM size {name} ({size['family']}) is retired and cannot be used "
                                            "for new jobs or deployments")
        return size

    def _component_of(self, component_id: str) -> dict[str, Any]:
        m = re.fullmatch(r"azureml://registries/[^/]+/components/([^/]+)/versions/([^/]+)", component_id or "")
        component = self.registry_components.get(m[1]) if m else None
        if component is None or component["name"] != m[2]:
            raise Refusal(404, "UserError", f"Component {component_id} was not found")
        return component["properties"]["componentSpec"]

    def _check_job(self, properties: dict[str, Any]) -> None:
        """Every node against its registry component: inputs it declares, required ones present, enum
        values kept, and the VM size of each step (given or the component's default) offered and current."""
        default_compute = (properties.get("settings") or {}).get("default_compute") or properties.get("computeId")
        for node_name, node in (properties.get("jobs") or {}).items():
            spec = self._component_of(node.get("componentId", ""))
            declared = spec.get("inputs") or {}
            given = node.get("inputs") or {}
            for key in given:
                if key not in declared:
                    raise Refusal(400, "UserError", f"{node_name}: the component {spec['name']} has no input {key}")
            for key, definition in declared.items():
                value = given.get(key)
                literal = value.get("value") if isinstance(value, dict) and value.get("job_input_type") == "literal" else None
                if value is None and not definition.get("optional") and "default" not in definition:
                    raise Refusal(400, "UserError", f"{node_name}: the required input {key} of {spec['name']} is missing")
                if literal is not None and definition.get("enum") and str(literal) not in [str(e) for e in definition["enum"]]:
                    raise Refusal(400, "UserError", f"{node_name}: input {key} is '{literal}', not one of "
                                                    f"{', '.join(map(str, definition['enum']))}")

            def effective(key: str) -> str | None:
                value = given.get(key)
                if isinstance(value, dict) and value.get("job_input_type") == "literal":
                    return str(value.get("value"))
                default = declared.get(key, {}).get("default")
                return None if default is None else str(default)

            for key in declared:
                if not key.startswith("instance_type"):
                    continue
                compute_key = "compute" + key.removeprefix("instance_type") if key != "instance_type" else (
                    "compute" if "compute" in declared else "compute_name")
                compute = effective(compute_key) if compute_key in declared else None
                size = effective(key)
                if (compute in (None, "serverless")) and size:
                    self._size_named(size)
            if spec.get("type") == "command":
                size = (node.get("resources") or {}).get("instance_type")
                if size:
                    self._size_named(size)
                elif not (node.get("computeId") or default_compute):
                    raise Refusal(400, "UserError", f"{node_name}: a serverless step needs resources.instance_type")

    def _cores_free(self, family: str) -> tuple[int, str] | None:
        """Free dedicated cores for a VM family: the smaller of its subscription row (-1 is unlimited)
        and the regional total."""
        key = re.sub(r"^standard|family$", "", family.lower())
        free, label = None, family
        for row in self.usages:
            words = row["name"]["value"]
            if row["type"].endswith("vmFamily/usages") and "Dedicated" in words:
                name = re.sub(r"^standard |family cluster dedicated vcpus$", "", words.lower()).replace(" ", "")
                if name == key and row["limit"] >= 0:
                    free, label = row["limit"] - row["currentValue"], words
            if row["type"].endswith("dedicatedCores/usages") and row["limit"] >= 0:
                regional = row["limit"] - row["currentValue"]
                free = regional if free is None else min(free, regional)
        return None if free is None else (free, label)

    def _check_deployment(self, body: dict[str, Any], properties: dict[str, Any]) -> None:
        size = self._size_named(properties.get("instanceType") or "")
        instances = int((body.get("sku") or {}).get("capacity") or 1)
        need = math.ceil(instances * 1.2) * int(size["vCPUs"])
        free = self._cores_free(size["family"])
        if free is not None and need > free[0]:
            raise Refusal(400, "QuotaExceeded", f"Not enough quota for {instances} x {size['name']}: the deployment "
                                                f"needs {need} cores (20% reserved for upgrades) but {free[1]} has "
                                                f"{max(free[0], 0)} free")

    def _check_serverless(self, properties: dict[str, Any]) -> None:
        model_id = ((properties.get("modelSettings") or {}).get("modelId") or "").rstrip("/")
        spec = self.model_specs.get(model_id.lower())
        if spec is None or not offers_serverless(spec):
            raise Refusal(400, "UserError", f"The model {model_id} is not offered as a serverless API (MaaS)")
        registry = model_id.split("/")[3] if model_id.startswith("azureml://registries/") else REGISTRY
        if registry != REGISTRY:
            subscribed = [s for k, s in self.resources.items() if "/marketplacesubscriptions/" in k
                          and s["properties"].get("modelId", "").rstrip("/") == model_id
                          and s["properties"].get("marketplaceSubscriptionStatus") == "Subscribed"]
            if not subscribed:
                raise Refusal(400, "UserError", f"The model {model_id} is sold through Azure Marketplace: "
                                                "subscribe to its offer first")


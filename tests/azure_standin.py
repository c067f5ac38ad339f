"""A local HTTPS stand-in of the Azure Resource Manager and Azure ML registry endpoints.

`azure-ai-ml` is pointed at it for real (cloud metadata, registry discovery, a self-signed
certificate made at start), so tests drive the SDK itself and assert on the HTTP requests it sent.
Bodies follow the documented REST examples (azure-rest-api-specs, Microsoft.MachineLearningServices
2024-10-01 `examples/`); only the fields the SDK reads are filled in. Long-running PUTs answer
201 + `Azure-AsyncOperation`, polled until `Succeeded`, like ARM does. It also serves an App Service
style managed identity token endpoint, so `DefaultAzureCredential` works unchanged against it.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
RESOURCE_GROUP = "fmbot-rg"
WORKSPACE = "fmbot-ws"
REGISTRY = "azureml"
LOCATION = "eastus"
IDENTITY_HEADER = "standin-identity-header"
PROVIDER = "providers/Microsoft.MachineLearningServices"
WORKSPACE_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/{PROVIDER}/workspaces/{WORKSPACE}"
REGISTRY_PATH = re.compile(rf"/mferp/managementfrontend/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/"
                           rf"{PROVIDER}/registries/([^/]+)(/.*)", re.IGNORECASE)
LRO_COLLECTIONS = ("onlineendpoints", "deployments", "serverlessendpoints", "marketplacesubscriptions")


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


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, so `connection_verify` can trust exactly it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
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


@dataclass
class AzureStandIn:
    """Routes are matched on the lower-cased path; resources live in `resources` keyed the same way."""

    requests: list[Request] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    registry_models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    registry_components: dict[str, dict[str, Any]] = field(default_factory=dict)
    usages: list[dict[str, Any]] = field(default_factory=list)
    mlflow_runs: list[dict[str, Any]] = field(default_factory=list)
    vm_sizes: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    cloud_name: str = field(default_factory=lambda: f"FmbotStandIn{uuid.uuid4().hex[:8]}")
    server: ThreadingHTTPServer | None = None
    _folder: tempfile.TemporaryDirectory | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AzureStandIn:
        self._folder = tempfile.TemporaryDirectory(prefix="azure-standin-")
        self.cert_path, key_path = _certificate(Path(self._folder.name))
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                standin._handle(self)

            do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, key_path)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        if self._folder:
            self._folder.cleanup()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/"

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

    # ------------------------------------------------------------------ test helpers

    def add_registry_model(self, name: str, version: str, *, tags: dict[str, str],
                           properties: dict[str, str] | None = None, description: str = "",
                           registry: str = REGISTRY) -> None:
        """A registry model version shaped like `Registries_ModelVersion` (dataplane 2021-10-01)."""
        asset = f"azureml://registries/{registry}/models/{name}/versions/{version}"
        self.registry_models.setdefault(name, []).append({
            "id": asset, "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
            "systemData": _system_data(),
            "properties": {"description": description, "tags": tags, "properties": properties or {},
                           "isAnonymous": False, "flavors": {}, "modelType": "mlflow_model",
                           "modelUri": f"{asset}/mlflow"},
        })

    def add_registry_component(self, name: str, version: str, inputs: dict[str, dict[str, Any]],
                               outputs: dict[str, dict[str, Any]], *, kind: str = "pipeline") -> None:
        spec: dict[str, Any] = {"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json",
                                "name": name, "version": version, "type": kind, "display_name": name,
                                "inputs": inputs, "outputs": outputs}
        if kind == "pipeline":
            spec["jobs"] = {}
        else:
            spec |= {"command": "echo", "environment": "azureml://registries/azureml/environments/acft/versions/1"}
        self.registry_components[name] = {
            "id": f"azureml://registries/{REGISTRY}/components/{name}/versions/{version}",
            "name": version, "type": "Microsoft.MachineLearningServices/registries/components/versions",
            "systemData": _system_data(),
            "properties": {"description": name, "tags": {}, "properties": {}, "isAnonymous": False,
                           "componentSpec": spec},
        }

    def add_compute(self, name: str, vm_size: str, *, max_nodes: int = 4) -> None:
        """An AmlCompute cluster shaped like `Compute_Get` (AKS and instances are not needed)."""
        path = f"{WORKSPACE_PATH}/computes/{name}"
        self.resources[path.lower()] = {
            "id": path, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/computes",
            "location": LOCATION, "systemData": _system_data(),
            "properties": {"computeType": "AmlCompute", "computeLocation": LOCATION, "provisioningState": "Succeeded",
                           "properties": {"vmSize": vm_size, "vmPriority": "Dedicated",
                                          "scaleSettings": {"maxNodeCount": max_nodes, "minNodeCount": 0,
                                                            "nodeIdleTimeBeforeScaleDown": "PT120S"}}},
        }

    def add_run(self, job_name: str, run_id: str, metrics: dict[str, float]) -> None:
        """An MLflow run of one pipeline step, shaped like MLflow's `runs/search` answer."""
        stamp = int(time.time() * 1000)
        self.mlflow_runs.append({
            "info": {"run_id": run_id, "experiment_id": "1", "status": "FINISHED"},
            "data": {"metrics": [{"key": k, "value": v, "timestamp": stamp, "step": 0} for k, v in metrics.items()],
                     "tags": [{"key": "mlflow.rootRunId", "value": job_name}]},
        })

    def fail(self, method: str, path_regex: str, status: int, *, times: int = 1,
             code: str = "TooManyRequests", message: str = "Too many requests") -> None:
        self.failures.append(Failure(method, re.compile(path_regex, re.IGNORECASE), status, times,
                                     {"error": {"code": code, "message": message}}))

    def set_job(self, name: str, status: str, **properties: Any) -> None:
        with self._lock:
            job = self.resources[f"{WORKSPACE_PATH}/jobs/{name}".lower()]
            job["properties"]["status"] = status
            job["properties"].update(properties)

    def job_body(self, name: str) -> dict[str, Any]:
        return next(r.body for r in self.requests if r.method == "PUT" and r.path.lower().endswith(f"/jobs/{name.lower()}"))

    def calls(self, method: str, fragment: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and fragment.lower() in r.path.lower()]

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
            status, payload, headers = self._failure(request) or self._route(request)
        data = b"" if payload is None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _failure(self, request: Request) -> tuple[int, Any, dict[str, str]] | None:
        for failure in self.failures:
            if failure.times > 0 and failure.method == request.method and failure.path.search(request.path):
                failure.times -= 1
                return failure.status, failure.body, {"Retry-After": "0"} if failure.status in (429, 503) else {}
        return None

    def _route(self, r: Request) -> tuple[int, Any, dict[str, str]]:
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
            return self._mlflow(r, path.rsplit("/mlflow/", 1)[1])
        if path.startswith("/operations/"):
            return 200, {"status": "Succeeded", "startTime": _now(), "endTime": _now()}, {}
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

    def _workspace(self) -> dict[str, Any]:
        return {"id": WORKSPACE_PATH, "name": WORKSPACE, "type": "Microsoft.MachineLearningServices/workspaces",
                "location": LOCATION, "kind": "Default", "identity": {"type": "SystemAssigned"},
                "sku": {"name": "Basic", "tier": "Basic"}, "systemData": _system_data(),
                "properties": {"friendlyName": WORKSPACE, "provisioningState": "Succeeded",
                               "discoveryUrl": f"{self.url}discovery", "mlFlowTrackingUri": f"azureml://127.0.0.1:{self.server.server_address[1]}/mlflow/v1.0{WORKSPACE_PATH}"}}

    def _mlflow(self, r: Request, rest: str) -> tuple[int, Any, dict[str, str]]:
        if rest == "experiments/get-by-name":
            return 200, {"experiment": {"experiment_id": "1", "name": r.query.get("experiment_name")}}, {}
        if rest == "runs/search" and r.method == "POST":
            root = re.fullmatch(r"tags.mlflow.rootRunId = '([^']+)'", r.body.get("filter", ""))
            runs = [run for run in self.mlflow_runs
                    if root and {"key": "mlflow.rootRunId", "value": root[1]} in run["data"]["tags"]]
            return 200, {"runs": runs}, {}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": rest}, {}

    def _registry(self, r: Request, registry: str, rest: str) -> tuple[int, Any, dict[str, str]]:
        """Every registry name serves the same models and components: tests use one registry at a time."""
        if rest.lower() == "/models":
            containers = [{"id": f"azureml://registries/{registry}/models/{name}", "name": name,
                           "type": "Microsoft.MachineLearningServices/registries/models", "systemData": _system_data(),
                           "properties": {"description": versions[-1]["properties"]["description"],
                                          "tags": versions[-1]["properties"]["tags"], "properties": {},
                                          "latestVersion": versions[-1]["name"]}}
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
            return 200, (component if m[2] else {"value": [component]}), {}
        return 404, {"error": {"code": "NotFound", "message": f"no registry route {rest}"}}, {}

    def _workspace_child(self, r: Request, path: str) -> tuple[int, Any, dict[str, str]]:
        rest = path[len(WORKSPACE_PATH):]
        parts = rest.strip("/").split("/")
        if rest.endswith("/listkeys") and r.method == "POST":
            return 200, {"primaryKey": "standin-primary-key", "secondaryKey": "standin-secondary-key"}, {}
        if rest.endswith("/cancel") and r.method == "POST":
            job = self.resources.get(path[: -len("/cancel")])
            if job is None:
                return 404, {"error": {"code": "NotFound", "message": "no such job"}}, {}
            job["properties"]["status"] = "Canceled"
            return 202, None, {"Location": f"{self.url}operations/{uuid.uuid4()}", "Retry-After": "0"}
        if r.method == "PUT":
            return self._put(r, path, parts)
        if r.method == "DELETE":
            if self.resources.pop(path, None) is None:
                return 204, None, {}
            return 202, None, {"Location": f"{self.url}operations/{uuid.uuid4()}", "Retry-After": "0"}
        if r.method == "GET":
            if path in self.resources:
                return 200, self.resources[path], {}
            if len(parts) % 2 == 1:
                prefix = path + "/"
                children = [v for k, v in self.resources.items()
                            if k.startswith(prefix) and "/" not in k[len(prefix):]]
                return 200, {"value": children}, {}
            return 404, {"error": {"code": "UserError", "message": f"{parts[-2]} {parts[-1]} not found"}}, {}
        return 405, {"error": {"code": "MethodNotAllowed", "message": r.method}}, {}

    def _put(self, r: Request, path: str, parts: list[str]) -> tuple[int, Any, dict[str, str]]:
        body = dict(r.body or {})
        collection, name = parts[-2], r.path.rstrip("/").split("/")[-1]
        properties = dict(body.get("properties") or {})
        properties["provisioningState"] = "Succeeded"
        resource = {**body, "id": r.path, "name": name, "systemData": _system_data(), "properties": properties}
        if collection == "jobs":
            properties.setdefault("status", "NotStarted")
            properties["services"] = {"Studio": {"endpoint": f"https://ml.azure.com/runs/{name}"}}
        if collection == "onlineendpoints":
            base = f"https://{name}.{LOCATION}.inference.ml.azure.com"
            properties |= {"scoringUri": f"{base}/score", "swaggerUri": f"{base}/swagger.json", "traffic": properties.get("traffic") or {}}
        if collection == "serverlessendpoints":
            properties["inferenceEndpoint"] = {"uri": f"https://{name}.{LOCATION}.models.ai.azure.com", "headers": {}}
            properties.setdefault("contentSafety", {"contentSafetyStatus": "Enabled"})
        if collection == "deployments":
            properties.setdefault("scaleSettings", {"scaleType": "Default"})
        if "/models/" in path:
            properties.setdefault("flavors", {})
        if collection == "marketplacesubscriptions":
            properties |= {"marketplaceSubscriptionStatus": "Subscribed",
                           "marketplacePlan": {"publisherId": "metagenai", "offerId": "meta-llama-3-offer",
                                               "planId": "meta-llama-3-70b-instruct"}}
        created = path not in self.resources
        if path in self.resources and collection != "jobs":
            merged = self.resources[path]
            merged["properties"].update(properties)
            resource = merged
        self.resources[path] = resource
        if collection in LRO_COLLECTIONS:
            return 201, resource, {"Azure-AsyncOperation": f"{self.url}operations/{uuid.uuid4()}", "Retry-After": "0"}
        return (201 if created else 200), resource, {}

"""The two `MLClient`s fmbot uses (workspace and registry) and a raw ARM caller for what the SDK lacks.

Everything that points the SDK somewhere other than public Azure (a sovereign cloud, a private
stand-in in tests) arrives here: `cloud`/`cloud_metadata` and `connection_verify` as arguments, or
the SDK's own environment variables (`ARM_CLOUD_METADATA_URL`, `REGISTRY_DISCOVERY_ENDPOINT_URL`,
`REQUESTS_CA_BUNDLE`), so production code and tests build clients the same way.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from azure.ai.ml import MLClient
from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RequestIdPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.polling import LROPoller
from azure.core.rest import HttpRequest
from azure.mgmt.core.polling.arm_polling import ARMPolling
from pydantic import BaseModel

ARM_API_VERSION = "2024-10-01"


class AzureTarget(BaseModel):
    """Which workspace and registry to use, and how to reach them."""

    subscription_id: str
    resource_group: str
    workspace: str
    registry: str = "azureml"
    cloud: str | None = None
    cloud_metadata: dict[str, str] | None = None
    connection_verify: str | None = None

    @property
    def workspace_path(self) -> str:
        return (f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}")


class WireCapture(SansIOHTTPPolicy):
    """Keeps the `properties.system_metadata` of every model version the registry sends, by model id.

    azure-ai-ml 1.35 writes that field but drops it when it reads a model, and since 2026 the registry
    publishes a model's tasks, SKUs and flags there; a per-call policy sees the response as it arrives.
    """

    def __init__(self) -> None:
        self.system_metadata: dict[str, dict[str, Any]] = {}

    def on_response(self, request: Any, response: Any) -> None:
        http = response.http_response
        if "/models/" not in http.request.url or "json" not in (http.headers.get("Content-Type") or ""):
            return
        try:
            body = json.loads(http.text())
        except ValueError:
            return
        for item in body.get("value", [body]) if isinstance(body, dict) else []:
            meta = (item.get("properties") or {}).get("system_metadata") if isinstance(item, dict) else None
            if isinstance(meta, dict) and item.get("id"):
                self.system_metadata[str(item["id"]).lower()] = meta

    def metadata_of(self, model_id: str | None) -> dict[str, Any] | None:
        return self.system_metadata.get(str(model_id or "").lower())


class AzureClients:
    """Built lazily: constructing a registry client already calls registry discovery."""

    def __init__(self, target: AzureTarget, credential: TokenCredential):
        self.target, self.credential = target, credential
        self.capture = WireCapture()

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"enable_telemetry": False, "show_progress": False}
        if self.target.cloud:
            options["cloud"] = self.target.cloud
        if self.target.cloud_metadata:
            options["cloud_metadata"] = self.target.cloud_metadata
        if self.target.connection_verify:
            options["connection_verify"] = self.target.connection_verify
        return options

    @cached_property
    def workspace(self) -> MLClient:
        t = self.target
        return MLClient(self.credential, t.subscription_id, t.resource_group, t.workspace, **self._options())

    @cached_property
    def registry(self) -> MLClient:
        return MLClient(self.credential, registry_name=self.target.registry, per_call_policies=[self.capture],
                        **self._options())

    @cached_property
    def arm_base_url(self) -> str:
        """The resource manager of the client's cloud (building the client registers a custom cloud)."""
        from azure.ai.ml._azure_environments import _get_base_url_from_metadata

        assert self.workspace is not None
        return _get_base_url_from_metadata(self.target.cloud)

    @cached_property
    def aml_scope(self) -> str:
        """Azure ML's own data-plane services (MLflow tracking) take tokens for this resource, not ARM's."""
        from azure.ai.ml._azure_environments import _get_aml_resource_id_from_metadata

        assert self.workspace is not None
        return f"{_get_aml_resource_id_from_metadata(self.target.cloud)}/.default"

    def _pipeline(self, scope: str) -> PipelineClient:
        policies = [RequestIdPolicy(), HeadersPolicy(), RetryPolicy(), BearerTokenCredentialPolicy(self.credential, scope)]
        verify = {"connection_verify": self.target.connection_verify} if self.target.connection_verify else {}
        return PipelineClient(base_url=self.arm_base_url, policies=policies, transport=RequestsTransport(**verify))

    def rest(self, method: str, url: str, body: dict[str, Any] | None = None, *, scope: str,
             params: dict[str, str] | None = None) -> dict[str, Any]:
        """One REST call for what the SDK's entities do not carry (serverless content safety, MLflow runs)."""
        response = self._pipeline(scope).send_request(HttpRequest(method, url, params=params, json=body))
        response.raise_for_status()
        return response.json() if response.content else {}

    def arm_long_running(self, path: str, body: dict[str, Any], api_version: str = ARM_API_VERSION,
                         poll_seconds: float = 5.0) -> dict[str, Any]:
        """One ARM PUT polled to completion as ARM documents it (Azure-AsyncOperation or Location),
        with azure-mgmt-core's ARMPolling; returns the final resource."""
        client = self._pipeline(f"{self.arm_base_url}/.default")
        request = HttpRequest("PUT", f"{self.arm_base_url}{path}", params={"api-version": api_version}, json=body)
        initial = client._pipeline.run(request)
        if initial.http_response.status_code not in (200, 201, 202):
            initial.http_response.raise_for_status()
        poller = LROPoller(client, initial, lambda response: json.loads(response.http_response.text() or "{}"),
                           ARMPolling(poll_seconds))
        return poller.result()

    def arm(self, method: str, path: str, body: dict[str, Any] | None = None,
            api_version: str = ARM_API_VERSION) -> dict[str, Any]:
        return self.rest(method, f"{self.arm_base_url}{path}", body, scope=f"{self.arm_base_url}/.default",
                         params={"api-version": api_version})

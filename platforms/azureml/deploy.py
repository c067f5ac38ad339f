"""Endpoints: managed online endpoints on dedicated VMs, and serverless (pay-per-token) endpoints.

Managed: a key-auth `ManagedOnlineEndpoint`, one `ManagedOnlineDeployment` named `default`
with request settings and probes sized for large models, then 100% of traffic to it. Serverless:
`ServerlessEndpoint(model_id=<model id without version>)`, preceded by a `MarketplaceSubscription`
for models sold through Azure Marketplace (every registry but Microsoft's own). Content filtering
is not a field of the SDK's entity, so it is set with one ARM PUT of `properties.contentSafety`.
"""

from __future__ import annotations

import re

from azure.ai.ml.entities import (
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    MarketplaceSubscription,
    OnlineRequestSettings,
    ProbeSettings,
    ServerlessEndpoint,
)
from pydantic import SecretStr

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import AzureNotFound, call
from platforms.base import (
    DeploySpec,
    EndpointInfo,
    EndpointState,
    ModelCard,
    PlatformError,
)

DEPLOYMENT = "default"
FIRST_PARTY_REGISTRIES = {"azureml", "azureml-msr", "azure-openai"}
SERVERLESS_API_VERSION = "2024-10-01"
TAG_MODEL, TAG_TASK, TAG_OWNER = "fmbot.model", "fmbot.task", "fmbot.owner"
STATES = {"succeeded": EndpointState.HEALTHY, "creating": EndpointState.CREATING, "updating": EndpointState.CREATING,
          "failed": EndpointState.UNHEALTHY, "deleting": EndpointState.STOPPED, "canceled": EndpointState.UNHEALTHY}


def _tags(spec: DeploySpec, card: ModelCard) -> dict[str, str]:
    task = spec.task or (card.tasks[0] if card.tasks else None)
    return {TAG_MODEL: card.ref, **({TAG_TASK: task.value} if task else {}), **({TAG_OWNER: spec.owner} if spec.owner else {})}


def _info(name: str, tags: dict[str, str], state: str | None, url: str | None, instances: int,
          key: str | None = None) -> EndpointInfo:
    return EndpointInfo(name=name, model=tags.get(TAG_MODEL, "?"), task=tags.get(TAG_TASK, "text-generation"),
                        url=url, key=SecretStr(key) if key else None,
                        state=STATES.get((state or "").lower(), EndpointState.CREATING),
                        instances=instances, owner=tags.get(TAG_OWNER))


def _refuse_taken(clients: AzureClients, name: str) -> None:
    try:
        call(lambda: clients.workspace.online_endpoints.get(name), what=f"look up endpoint {name}", scope="endpoint")
    except AzureNotFound:
        return
    raise PlatformError(f'an endpoint named "{name}" already exists', hint="Pick another name, or delete it first")


def deploy_managed(clients: AzureClients, spec: DeploySpec, card: ModelCard, instance_type: str) -> EndpointInfo:
    _refuse_taken(clients, spec.endpoint)
    tags = _tags(spec, card)
    endpoint = ManagedOnlineEndpoint(name=spec.endpoint, auth_mode="key", tags=tags,
                                     description=f"{card.ref} deployed by fmbot")
    call(lambda: clients.workspace.online_endpoints.begin_create_or_update(endpoint).result(),
         what=f"create endpoint {spec.endpoint}", scope="endpoint")
    deployment = ManagedOnlineDeployment(
        name=DEPLOYMENT, endpoint_name=spec.endpoint, model=card.source,
        instance_type=instance_type, instance_count=spec.instances,
        request_settings=OnlineRequestSettings(max_concurrent_requests_per_instance=1, request_timeout_ms=90_000,
                                               max_queue_wait_ms=500),
        liveness_probe=ProbeSettings(initial_delay=600, period=10, timeout=10, failure_threshold=30),
        readiness_probe=ProbeSettings(initial_delay=10, period=10, timeout=10, failure_threshold=30),
        tags=tags,
    )
    call(lambda: clients.workspace.online_deployments.begin_create_or_update(deployment).result(),
         what=f"deploy {card.ref} to {spec.endpoint}", scope="endpoint")
    endpoint.traffic = {DEPLOYMENT: 100}
    created = call(lambda: clients.workspace.online_endpoints.begin_create_or_update(endpoint).result(),
                   what=f"send traffic to {spec.endpoint}", scope="endpoint")
    keys = call(lambda: clients.workspace.online_endpoints.get_keys(spec.endpoint),
                what=f"read the keys of {spec.endpoint}", scope="endpoint")
    return _info(spec.endpoint, tags, created.provisioning_state, created.scoring_uri, spec.instances, keys.primary_key)


def unversioned_id(model_id: str) -> str:
    return re.sub(r"/versions/[^/]+$", "", model_id)


def deploy_serverless(clients: AzureClients, spec: DeploySpec, card: ModelCard, *, content_safety: bool = True) -> EndpointInfo:
    model_id = unversioned_id(card.source)
    registry = model_id.split("/")[3] if model_id.startswith("azureml://registries/") else "azureml"
    if registry not in FIRST_PARTY_REGISTRIES:
        subscription = MarketplaceSubscription(model_id=model_id, name=f"{card.name}-sub"[:50])
        call(lambda: clients.workspace.marketplace_subscriptions.begin_create_or_update(subscription).result(),
             what=f"subscribe to {card.name} in Azure Marketplace", scope="marketplace")
    endpoint = ServerlessEndpoint(name=spec.endpoint, model_id=model_id)
    created = call(lambda: clients.workspace.serverless_endpoints.begin_create_or_update(endpoint).result(),
                   what=f"create serverless endpoint {spec.endpoint}", scope="endpoint")
    path = f"{clients.target.workspace_path}/serverlessEndpoints/{spec.endpoint}"
    body = call(lambda: clients.arm("GET", path, api_version=SERVERLESS_API_VERSION),
                what=f"read serverless endpoint {spec.endpoint}", scope="endpoint")
    body["properties"]["contentSafety"] = {"contentSafetyStatus": "Enabled" if content_safety else "Disabled"}
    call(lambda: clients.arm("PUT", path, {k: body[k] for k in ("location", "sku", "properties", "tags") if k in body},
                             api_version=SERVERLESS_API_VERSION),
         what=f"set content filtering on {spec.endpoint}", scope="endpoint")
    keys = call(lambda: clients.workspace.serverless_endpoints.get_keys(spec.endpoint),
                what=f"read the keys of {spec.endpoint}", scope="endpoint")
    return _info(spec.endpoint, _tags(spec, card), created.provisioning_state, created.scoring_uri, 1, keys.primary_key)


def list_endpoints(clients: AzureClients) -> list[EndpointInfo]:
    managed = call(lambda: list(clients.workspace.online_endpoints.list()), what="list endpoints", scope="endpoint")
    return [_info(e.name, e.tags or {}, e.provisioning_state, e.scoring_uri, sum(1 for _ in (e.traffic or {})))
            for e in managed]


def delete_endpoint(clients: AzureClients, name: str) -> EndpointInfo:
    endpoint = call(lambda: clients.workspace.online_endpoints.get(name), what=f"look up endpoint {name}", scope="endpoint")
    call(lambda: clients.workspace.online_endpoints.begin_delete(name=name).result(),
         what=f"delete endpoint {name}", scope="endpoint")
    info = _info(name, endpoint.tags or {}, "deleting", endpoint.scoring_uri, 0)
    return info.model_copy(update={"state": EndpointState.STOPPED})

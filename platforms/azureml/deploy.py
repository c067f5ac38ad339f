"""Endpoints: managed online endpoints on dedicated VMs, and serverless (pay-per-token) endpoints.

Managed: a key-auth `ManagedOnlineEndpoint`, one `ManagedOnlineDeployment` named `default` on a size
the model allows for inference (listed in the region, not retired), then 100% of traffic to it.
Serverless is only for models Azure offers as a serverless API (MaaS, `ModelCard.serverless`): a
`MarketplaceSubscription` first for models sold through Azure Marketplace (every registry but
Microsoft's own), then one ARM PUT of the endpoint carrying its auth mode and content filtering
(azure-ai-ml's `ServerlessEndpoint` has no content-safety field; the body is the REST example
`ServerlessEndpoint/createOrUpdate.json`'s), polled to completion.
"""

from __future__ import annotations

import re
from typing import Any

from azure.ai.ml.entities import (
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    MarketplaceSubscription,
    OnlineRequestSettings,
    ProbeSettings,
)
from pydantic import SecretStr

from platforms.azureml import quota
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
# azure-ai-ml hands the REST status (`PendingFulfillmentStart`) back snake-cased; both are compared folded.
SUBSCRIPTION_PENDING = "pendingfulfillmentstart"
SUBSCRIPTION_REFUSED = ("suspended", "unsubscribed")


def _tags(spec: DeploySpec, card: ModelCard) -> dict[str, str]:
    task = spec.task or (card.tasks[0] if card.tasks else None)
    return {TAG_MODEL: card.ref, **({TAG_TASK: task.value} if task else {}), **({TAG_OWNER: spec.owner} if spec.owner else {})}


def _info(name: str, tags: dict[str, str], state: str | None, url: str | None, instances: int,
          key: str | None = None, *, serverless: bool = False) -> EndpointInfo:
    return EndpointInfo(name=name, model=tags.get(TAG_MODEL, "?"), task=tags.get(TAG_TASK, "text-generation"),
                        url=url, key=SecretStr(key) if key else None,
                        state=STATES.get((state or "").lower(), EndpointState.CREATING),
                        instances=instances, owner=tags.get(TAG_OWNER),
                        message="serverless API (pay per token)" if serverless else None)


def _refuse_taken(clients: AzureClients, name: str) -> None:
    for lookup in (clients.workspace.online_endpoints.get, clients.workspace.serverless_endpoints.get):
        try:
            call(lambda: lookup(name), what=f"look up endpoint {name}", scope="endpoint")
        except AzureNotFound:
            continue
        raise PlatformError(f'an endpoint named "{name}" already exists', hint="Pick another name, or delete it first")


def inference_size(clients: AzureClients, card: ModelCard, chosen: str | None) -> str:
    """The user's size if the model allows it, else the first allowed size the region offers today."""
    sizes = quota.read_sizes(clients)
    usable = quota.usable(sizes, card.inference_compute) if card.inference_compute else []
    if chosen:
        size = sizes.get(chosen.lower())
        if size is None or size.retired or (card.inference_compute and size not in usable):
            raise PlatformError(f"{chosen} cannot serve {card.ref}",
                                hint=f"Use one of: {', '.join(s.name for s in usable[:8])}" if usable
                                else "The region offers none of the sizes this model allows")
        return size.name
    if not card.inference_compute:
        current = sorted((s for s in sizes.values() if not s.retired), key=lambda s: (s.gpus, s.cores))
        raise PlatformError(f"{card.ref} lists no inference sizes (Azure lists none for an imported model), so "
                            "choose the VM size to deploy it on",
                            hint="Give --compute SIZE (in Slack, the VM size field), e.g. "
                                 + ", ".join(s.name for s in current[:4]))
    if not usable:
        raise PlatformError(f"{card.ref} lists no inference size this region offers",
                            hint="Deploy it in another region, or pick a size with --compute")
    return usable[0].name


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


def _subscribe(clients: AzureClients, card: ModelCard, model_id: str) -> None:
    """A Marketplace offer is subscribed to once per workspace; pending and refused ones are explained."""
    subscription = MarketplaceSubscription(model_id=model_id, name=re.sub(r"[^A-Za-z0-9-]", "-", card.name)[:50])
    created = call(lambda: clients.workspace.marketplace_subscriptions.begin_create_or_update(subscription).result(),
                   what=f"subscribe to {card.name} in Azure Marketplace", scope="marketplace")
    status = str(getattr(created, "status", "") or "").replace("_", "").lower()
    if status == SUBSCRIPTION_PENDING:
        raise PlatformError(f"the Azure Marketplace subscription to {card.name} is still being set up",
                            hint="Azure Marketplace has not confirmed it yet; deploy again in a few minutes")
    if status in SUBSCRIPTION_REFUSED:
        raise PlatformError(f"Azure Marketplace {status} the subscription to {card.name}",
                            hint="The subscription's billing account must allow Marketplace purchases; an admin can "
                                 "check it in the Azure portal (Marketplace → Private Marketplace / Billing)")


def deploy_serverless(clients: AzureClients, spec: DeploySpec, card: ModelCard, *, content_safety: bool = True) -> EndpointInfo:
    if not card.serverless:
        raise PlatformError(f"Azure does not offer {card.ref} as a serverless API",
                            hint="Deploy it to a managed endpoint (a VM size) instead")
    _refuse_taken(clients, spec.endpoint)
    model_id = unversioned_id(card.source)
    registry = model_id.split("/")[3] if model_id.startswith("azureml://registries/") else "azureml"
    if registry not in FIRST_PARTY_REGISTRIES:
        _subscribe(clients, card, model_id)
    workspace = call(lambda: clients.workspace.workspaces.get(clients.target.workspace), what="read the workspace")
    tags = _tags(spec, card)
    body = {"location": workspace.location, "tags": tags, "sku": {"name": "Consumption"},
            "properties": {"modelSettings": {"modelId": model_id}, "authMode": "Key",
                           "contentSafety": {"contentSafetyStatus": "Enabled" if content_safety else "Disabled"}}}
    path = f"{clients.target.workspace_path}/serverlessEndpoints/{spec.endpoint}"
    created = call(lambda: clients.arm_long_running(path, body, api_version=SERVERLESS_API_VERSION),
                   what=f"create serverless endpoint {spec.endpoint}", scope="endpoint")
    keys = call(lambda: clients.workspace.serverless_endpoints.get_keys(spec.endpoint),
                what=f"read the keys of {spec.endpoint}", scope="endpoint")
    properties = created.get("properties") or {}
    return _info(spec.endpoint, tags, properties.get("provisioningState"),
                 (properties.get("inferenceEndpoint") or {}).get("uri"), 1, keys.primary_key, serverless=True)


def list_endpoints(clients: AzureClients) -> list[EndpointInfo]:
    managed = call(lambda: list(clients.workspace.online_endpoints.list()), what="list endpoints", scope="endpoint")
    serverless = call(lambda: list(clients.workspace.serverless_endpoints.list()), what="list serverless endpoints",
                      scope="endpoint")
    return ([_info(e.name, e.tags or {}, e.provisioning_state, e.scoring_uri, sum(1 for _ in (e.traffic or {})))
             for e in managed]
            + [_info(e.name, e.tags or {}, e.provisioning_state, e.scoring_uri, 1, serverless=True) for e in serverless])


def _find(clients: AzureClients, name: str) -> tuple[Any, Any, bool]:
    """(operations, endpoint, serverless) for a managed or a serverless endpoint of that name."""
    for kind in ("online_endpoints", "serverless_endpoints"):
        operations = getattr(clients.workspace, kind)
        try:
            found = call(lambda: operations.get(name), what=f"look up endpoint {name}", scope="endpoint")
        except AzureNotFound:
            continue
        return operations, found, kind == "serverless_endpoints"
    raise PlatformError(f'there is no endpoint named "{name}"', hint="See `endpoints`")


def get_endpoint(clients: AzureClients, name: str) -> EndpointInfo:
    operations, found, serverless = _find(clients, name)
    return _info(name, found.tags or {}, found.provisioning_state, found.scoring_uri, 1, serverless=serverless)


def endpoint_key(clients: AzureClients, name: str) -> SecretStr | None:
    """The primary key, managed or serverless, read from Azure whenever its owner asks: Azure keeps
    the keys, fmbot stores them nowhere (the caller shows it to the owner only)."""
    operations, _, _ = _find(clients, name)
    keys = call(lambda: operations.get_keys(name), what=f"read the keys of {name}", scope="endpoint")
    return SecretStr(keys.primary_key) if keys.primary_key else None


def rotate_key(clients: AzureClients, name: str) -> EndpointInfo:
    """A new primary key for a managed endpoint (`regenerateKeys`, polled to the end, so the old key
    is void once this returns). Serverless endpoints are refused: their regeneration is not checked
    against Azure's contract here (the stand-in serves only `OnlineEndpoint/regenerateKeys.json`),
    so fmbot does not claim to do it."""
    operations, found, serverless = _find(clients, name)
    if serverless:
        raise PlatformError(f"fmbot cannot rotate the key of serverless endpoint {name}",
                            hint=f"Regenerate its primary key on {name}'s page in Azure ML studio, or with "
                                 "the REST API (ServerlessEndpoints regenerateKeys); fmbot then shows the new "
                                 "key to you with Show key")
    call(lambda: operations.begin_regenerate_keys(name=name, key_type="primary").result(),
         what=f"regenerate the key of {name}", scope="endpoint")
    return _info(name, found.tags or {}, found.provisioning_state, found.scoring_uri, 1)


def delete_endpoint(clients: AzureClients, name: str) -> EndpointInfo:
    operations, found, serverless = _find(clients, name)
    call(lambda: operations.begin_delete(name=name).result(), what=f"delete endpoint {name}", scope="endpoint")
    info = _info(name, found.tags or {}, "deleting", found.scoring_uri, 0, serverless=serverless)
    return info.model_copy(update={"state": EndpointState.STOPPED})

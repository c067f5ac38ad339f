"""The registry's model catalog as fmbot's ModelCards, cached in Redis.

The registry has published a model's metadata in two layouts (see `tests/data/azure/models/`):
- tags and properties: `tags.task` (inference), `properties.finetuning-tasks`, the
  `*_compute_allow_list` tags, `properties.*-recommended-sku`, `SharedComputeCapacityEnabled`,
  and for serverless models `tags.deploymentOptions` / `tags.maas-inference`;
- `system_metadata` (2026): `tasks.inferenceTasks` / `tasks.fineTuningTasks`, `SKU.*RecommendedSkus`,
  `supportedComputes.*Computes`, `sharedComputeCapacityEnabled`, `deploymentOptions`, `license`.
azure-ai-ml 1.35 drops `system_metadata` when it reads a model (it only writes it, under
`properties.system_metadata`), so `clients.WireCapture` keeps it from the response as it arrives.

Listing the registry costs one call for the containers and one per changed model: the cards are kept
in Redis under `fmbot:azure:catalog` (JSON: `fetched_at` and `cards`); a refresh reads the container
listing and GETs only the models whose latest version differs from the cached card. A stale copy is
served while a background thread refreshes it, so only the very first listing waits for Azure.
"""

from __future__ import annotations

import ast
import logging
import re
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.entities import Model
from pydantic import BaseModel
from redis import Redis

from platforms.azureml.errors import call
from platforms.base import ModelCard
from platforms.tasks import Task

CATALOG_KEY = "fmbot:azure:catalog"
REFRESH_LOCK_KEY = "fmbot:azure:catalog:refresh"
FRESH_SECONDS = 15 * 60
REFRESH_LOCK_SECONDS = 10 * 60
log = logging.getLogger(__name__)

TASK_TAGS = {t.value: t for t in Task} | {
    "text-named-entity-recognition": Task.TOKEN_CLASSIFICATION,
    "text-summarization": Task.SUMMARIZATION,
    "text-translation": Task.TRANSLATION,
}
PURPOSES = ("inference", "finetune", "evaluation")


def _sizes(value: Any) -> list[str]:
    """Allow lists arrive as Python-list text ("['Standard_NC6s_v3', ...]"), comma lists or real lists."""
    text = value if isinstance(value, str) else " ".join(map(str, value or []))
    return re.findall(r"Standard_[A-Za-z0-9_]+", text or "")


def _tasks(value: Any) -> list[Task]:
    names = value if isinstance(value, list) else str(value or "").split(",")
    found = [TASK_TAGS[n.strip().lower()] for n in names if str(n).strip().lower() in TASK_TAGS]
    return list(dict.fromkeys(found))


def _flag(value: Any) -> bool:
    """The registry marks flags with the key present (often with an empty value), "True" or true."""
    return value is not None and str(value).strip().lower() not in ("false", "0", "no")


def _literal(value: Any) -> dict[str, Any]:
    """`model_specific_defaults` is a dict in the spec, a Python-literal string once served as a tag."""
    if isinstance(value, dict):
        return value
    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _get(source: dict[str, Any], *names: str) -> Any:
    """A key as the registry spells it, ignoring case and the stray spaces some specs carry."""
    folded = {str(k).strip().lower(): v for k, v in source.items()}
    return next((folded[n.lower()] for n in names if n.lower() in folded), None)


def card_from_model(model: Model, registry: str, system_metadata: dict[str, Any] | None = None) -> ModelCard:
    tags: dict[str, Any] = dict(model.tags or {})
    props: dict[str, Any] = dict(model.properties or {})
    meta = system_metadata or getattr(model, "_system_metadata", None) or {}
    tasks_meta, sku, computes = meta.get("tasks") or {}, meta.get("SKU") or {}, meta.get("supportedComputes") or {}
    allowed = {
        "inference": _sizes(computes.get("inferenceComputes") or _get(tags, "inference_compute_allow_list")),
        "finetune": _sizes(computes.get("finetuneComputes") or _get(tags, "finetune_compute_allow_list")),
        "evaluation": _sizes(computes.get("evaluationComputes") or _get(tags, "evaluation_compute_allow_list")),
    }
    recommended = {
        purpose: _sizes(sku.get(f"{purpose}RecommendedSkus") or _get(props, f"{purpose}-recommended-sku")
                        or _get(tags, f"{purpose}-recommended-sku"))
        for purpose in PURPOSES
    }
    options = meta.get("deploymentOptions") or str(_get(tags, "deploymentOptions") or "").split(",")
    serverless = ("ServerlessMaaS" in [str(o).strip() for o in options]
                  or str(_get(tags, "maas-inference")).lower() == "true")
    shared = meta.get("sharedComputeCapacityEnabled")
    if shared is None:
        shared = _get(tags, "SharedComputeCapacityEnabled")
        shared = _get(props, "SharedComputeCapacityEnabled") if shared is None else shared
    created = getattr(model.creation_context, "created_at", None)
    return ModelCard(
        name=model.name,
        version=str(model.version),
        tasks=_tasks(tasks_meta.get("inferenceTasks") or _get(tags, "task")),
        finetune_tasks=_tasks(tasks_meta.get("fineTuningTasks") or _get(props, "finetuning-tasks")
                              or _get(tags, "finetuning-tasks")),
        license=str(meta.get("license") or _get(tags, "license") or "").strip() or None,
        description=model.description or "",
        source=model.id if str(model.id or "").startswith("azureml://") else
        f"azureml://registries/{registry}/models/{model.name}/versions/{model.version}",
        inference_compute=allowed["inference"],
        finetune_compute=allowed["finetune"],
        evaluation_compute=allowed["evaluation"],
        shared_quota=_flag(shared),
        serverless=serverless,
        created_at=created if not isinstance(created, str) else None,
        properties={**{k: str(v) for k, v in props.items()}, "tags": {k: str(v) for k, v in tags.items()},
                    "recommended": recommended,
                    "model_specific_defaults": _literal(_get(tags, "model_specific_defaults") or {})},
    )


def read_model(client: MLClient, name: str, version: str | None) -> Model:
    return client.models.get(name, version=version) if version else client.models.get(name, label="latest")


def fetch_cards(registry: MLClient, registry_name: str, metadata: Callable[[str], dict[str, Any] | None],
                previous: list[ModelCard]) -> list[ModelCard]:
    """Every model's latest version; a model whose latest version is already cached is not read again."""
    containers = call(lambda: list(registry.models.list()), what="list the registry's models", scope="registry")
    cached = {(c.name, c.version): c for c in previous}
    cards = []
    for container in containers:
        known = cached.get((container.name, str(container.latest_version)))
        if known is not None:
            cards.append(known)
            continue
        model = call(partial(read_model, registry, container.name, container.latest_version),
                     what=f"read model {container.name}", scope="registry")
        cards.append(card_from_model(model, registry_name, metadata(model.id)))
    return sorted(cards, key=lambda c: c.name.lower())


class CachedCatalog(BaseModel):
    fetched_at: float
    cards: list[ModelCard]


class CatalogCache:
    """Serves the last listing from Redis; refreshes it in a thread once it is older than `fresh_seconds`.

    Without Redis (a one-off CLI call) every listing goes to Azure.
    """

    def __init__(self, fetch: Callable[[list[ModelCard]], list[ModelCard]], redis: Redis | None, *,
                 fresh_seconds: float = FRESH_SECONDS):
        self.fetch, self.redis, self.fresh_seconds = fetch, redis, fresh_seconds
        self.refreshing: threading.Thread | None = None

    def cards(self) -> list[ModelCard]:
        cached = self._read()
        if cached is None:
            return self.refresh()
        if time.time() - cached.fetched_at > self.fresh_seconds:
            self.refresh_in_background()
        return cached.cards

    def refresh(self) -> list[ModelCard]:
        previous = self._read()
        cards = self.fetch(previous.cards if previous else [])
        if self.redis is not None:
            self.redis.set(CATALOG_KEY, CachedCatalog(fetched_at=time.time(), cards=cards).model_dump_json())
        return cards

    def refresh_in_background(self) -> None:
        """One refresh at a time across all processes (SET NX lock), so a busy channel does not stampede Azure."""
        if self.redis is None or not self.redis.set(REFRESH_LOCK_KEY, "1", nx=True, ex=REFRESH_LOCK_SECONDS):
            return

        def run() -> None:
            try:
                self.refresh()
            except Exception:
                log.exception("refreshing the Azure model catalog failed; the cached listing stays")
            finally:
                self.redis.delete(REFRESH_LOCK_KEY)

        self.refreshing = threading.Thread(target=run, name="azure-catalog-refresh", daemon=True)
        self.refreshing.start()

    def _read(self) -> CachedCatalog | None:
        raw = self.redis.get(CATALOG_KEY) if self.redis is not None else None
        return CachedCatalog.model_validate_json(raw) if raw else None

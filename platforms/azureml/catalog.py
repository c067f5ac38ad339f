"""The registry's model catalog as fmbot's ModelCards, cached in Redis.

Listing the `azureml` registry costs one call for the containers and one per model for its
latest version: far more than Slack's 3 seconds. The cards are kept in Redis under
`fmbot:azure:catalog` (JSON: `fetched_at` and `cards`); a stale copy is still served while a
background thread refreshes it, so only the very first listing waits for Azure.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from functools import partial

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


def _sizes(text: str | None) -> list[str]:
    """Allow lists arrive as Python-list text ("['Standard_NC6s_v3', ...]"); the SKU names are what count."""
    return re.findall(r"Standard_[A-Za-z0-9_]+", text or "")


def _shared_quota(tags: dict[str, str]) -> bool:
    """The registry marks such models with the tag present (often with an empty value)."""
    return "SharedComputeCapacityEnabled" in tags and tags["SharedComputeCapacityEnabled"].lower() not in ("false", "0", "no")


def card_from_model(model: Model, registry: str) -> ModelCard:
    tags: dict[str, str] = {k: str(v) for k, v in (model.tags or {}).items()}
    tasks = [TASK_TAGS[t.strip().lower()] for t in tags.get("task", "").split(",") if t.strip().lower() in TASK_TAGS]
    created = getattr(model.creation_context, "created_at", None)
    return ModelCard(
        name=model.name,
        version=str(model.version),
        tasks=tasks,
        license=tags.get("license"),
        description=model.description or "",
        source=f"azureml://registries/{registry}/models/{model.name}/versions/{model.version}",
        inference_compute=_sizes(tags.get("inference_compute_allow_list")),
        finetune_compute=_sizes(tags.get("finetune_compute_allow_list")),
        evaluation_compute=_sizes(tags.get("evaluation_compute_allow_list")),
        shared_quota=_shared_quota(tags),
        created_at=created if not isinstance(created, str) else None,
        properties={**(model.properties or {}), "tags": tags},
    )


def read_model(client: MLClient, name: str, version: str | None) -> Model:
    return client.models.get(name, version=version) if version else client.models.get(name, label="latest")


def fetch_cards(registry: MLClient, registry_name: str) -> list[ModelCard]:
    """Every model's latest version: the container listing only carries names and latest versions."""
    containers = call(lambda: list(registry.models.list()), what="list the registry's models", scope="registry")
    cards = []
    for container in containers:
        model = call(partial(read_model, registry, container.name, container.latest_version),
                     what=f"read model {container.name}", scope="registry")
        cards.append(card_from_model(model, registry_name))
    return sorted(cards, key=lambda c: c.name.lower())


class CachedCatalog(BaseModel):
    fetched_at: float
    cards: list[ModelCard]


class CatalogCache:
    """Serves the last listing from Redis; refreshes it in a thread once it is older than `fresh_seconds`.

    Without Redis (a one-off CLI call) every listing goes to Azure.
    """

    def __init__(self, fetch: Callable[[], list[ModelCard]], redis: Redis | None, *,
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
        cards = self.fetch()
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

"""Quota pre-flight and VM sizes: will `instances` of a size fit, and which sizes may fmbot name at all?

Azure's usage listing (REST example `Usage/list.json`) has several rows per VM family: the
subscription's regional row (`vmFamily/usages`, the quota), rows scoped to a workspace and to each
cluster (what they use), low-priority rows, and regional totals (`dedicatedCores/usages`). A limit
of -1 means unlimited. Family rows are named in words ("Standard NC Family Cluster Dedicated
vCPUs") while a VM size names its family in camel case (`standardNCSv3Family`); both are reduced
to the family's core ("ncsv3") to be matched. A request fits when its cores fit the family's free
cores, the workspace's own row where the workspace has one, and the regional total. Managed online
deployments need 20% more: Azure reserves capacity for upgrades (ceil(1.2 × instances) instances).

`compute.list_usage()` and `list_sizes()` in azure-ai-ml 1.35.2 copy the REST dict without renaming,
so the used cores sit under `currentValue` and a size's cores under `vCPUs`; both spellings are read.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import call
from platforms.base import ModelCard, QuotaCheck

UNLIMITED = -1
DEPLOYMENT_RESERVE = 1.2
# Families Azure has retired (NC, NC v2, ND, NV v1 in 2023; NC v3 on 30 September 2025): a region
# may still list them and component defaults still name them, but new work on them is refused.
RETIRED_FAMILIES = frozenset({"nc", "ncsv2", "nds", "nv", "ncsv3"})
QUOTA_HELP = ("Ask for more in the Azure portal: Quotas → Machine learning → this region → the family, "
              "\"Request quota increase\" (Azure ML studio: Manage → Quota)")


class FamilyQuota(BaseModel):
    family: str
    limit: int
    used: int

    @property
    def free(self) -> int | None:
        """None when unlimited."""
        return None if self.limit == UNLIMITED else max(self.limit - self.used, 0)


class Usages(BaseModel):
    families: dict[str, FamilyQuota] = {}
    workspace: dict[str, FamilyQuota] = {}
    regional: FamilyQuota | None = None

    def free_cores(self, family: str) -> tuple[int | None, str]:
        """Free dedicated cores for a family key and the row that bounds them (None: no bound known)."""
        bounds = [q for q in (self.families.get(family), self.workspace.get(family), self.regional) if q]
        limited = [q for q in bounds if q.free is not None]
        if not limited:
            return None, self.families[family].family if family in self.families else family
        tightest = min(limited, key=lambda q: q.free)
        return tightest.free, tightest.family


class VmSizeInfo(BaseModel):
    name: str
    family: str
    cores: int
    gpus: int = 0
    memory_gb: float = 0.0

    @property
    def key(self) -> str:
        return family_key(self.family)

    @property
    def retired(self) -> bool:
        return self.key in RETIRED_FAMILIES


def family_key(text: str) -> str:
    """"standardNCSv3Family", "Standard NCSv3 Family Cluster Dedicated vCPUs" → "ncsv3"."""
    words = re.sub(r"(?i)\bcluster\b|\bdedicated\b|\blowpriority\b|\bvcpus\b", "", text)
    return re.sub(r"(?i)^standard|family$", "", re.sub(r"[\s_]", "", words)).lower()


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def read_usages(clients: AzureClients) -> Usages:
    rows = call(lambda: list(clients.workspace.compute.list_usage()), what="read compute quota", scope="quota")
    workspace_scope = f"/workspaces/{clients.target.workspace}/usages/".lower()
    usages = Usages()
    for usage in rows:
        raw = vars(usage)
        name = str(_field(_field(raw, "name"), "value") or "")
        kind = str(_field(raw, "type") or "")
        quota = FamilyQuota(family=name, limit=int(_field(raw, "limit") or 0),
                            used=int(_field(raw, "current_value", "currentValue") or 0))
        if kind.endswith("dedicatedCores/usages"):
            usages.regional = quota
        elif "Dedicated" in name and kind.endswith("vmFamily/usages"):
            usages.families[family_key(name)] = quota
        elif "Dedicated" in name and workspace_scope in str(_field(raw, "id") or "").lower():
            usages.workspace[family_key(name)] = quota
    return usages


def read_sizes(clients: AzureClients) -> dict[str, VmSizeInfo]:
    sizes = call(lambda: list(clients.workspace.compute.list_sizes()), what="read VM sizes", scope="quota")
    result = {}
    for size in sizes:
        raw = vars(size)
        name = _field(raw, "name")
        if name:
            result[name.lower()] = VmSizeInfo(name=name, family=_field(raw, "family") or "",
                                              cores=int(_field(raw, "v_cp_us", "vCPUs") or 0),
                                              gpus=int(_field(raw, "gpus") or 0),
                                              memory_gb=float(_field(raw, "memory_gb", "memoryGB") or 0))
    return result


def usable(sizes: dict[str, VmSizeInfo], names: list[str]) -> list[VmSizeInfo]:
    """The named sizes this region lists and Azure has not retired, in the given order."""
    found = [sizes.get(n.lower()) for n in names]
    return [s for s in found if s is not None and not s.retired]


def cpu_step_size(sizes: dict[str, VmSizeInfo]) -> VmSizeInfo | None:
    """The smallest current CPU size with 4+ cores and 28+ GB: what the import and preprocessing
    steps need (the components' own default, Standard_D12_v2, has 4 cores and 28 GB)."""
    fits = [s for s in sizes.values() if not s.retired and s.gpus == 0 and s.cores >= 4 and s.memory_gb >= 28]
    return min(fits, key=lambda s: (s.cores, s.memory_gb, s.name), default=None)


def cores_needed(size: VmSizeInfo, instances: int, *, deployment: bool) -> int:
    count = math.ceil(instances * DEPLOYMENT_RESERVE) if deployment else instances
    return size.cores * count


def check(usages: Usages, sizes: dict[str, VmSizeInfo], sku: str, instances: int,
          card: ModelCard | None = None, candidates: list[str] | None = None, *, deployment: bool = False) -> QuotaCheck:
    """Pure arithmetic over what Azure reported, so the wording is testable and reused by every form."""
    size = sizes.get(sku.lower())
    if size is None:
        listed = [s.name for s in usable(sizes, candidates or [])] or sorted(
            s.name for s in sizes.values() if not s.retired)[:8]
        return QuotaCheck(ok=False, message=f"{sku} is not offered in this workspace's region",
                          suggestions=[f"Use one of: {', '.join(listed)}"])
    if size.retired:
        fits = [s.name for s in usable(sizes, candidates or [])] or sorted(
            s.name for s in sizes.values() if not s.retired and s.gpus >= min(size.gpus, 1))[:8]
        return QuotaCheck(ok=False, message=f"{sku} ({size.family}) is retired by Azure and cannot run new work",
                          suggestions=[f"Use one of: {', '.join(fits)}"] if fits else [])
    need = cores_needed(size, instances, deployment=deployment)
    reserve = " (with the 20% Azure reserves for upgrades)" if deployment else ""
    free, bound = usages.free_cores(size.key)
    if free is None:
        return QuotaCheck(ok=True, message=f"{instances} × {sku} needs {need} cores{reserve}; "
                                           f"Azure reports no limit for {size.family}")
    if need <= free:
        return QuotaCheck(ok=True, message=f"{instances} × {sku} needs {need} cores{reserve}; {free} are free ({bound})")
    suggestions = []
    fewer = next((n for n in range(instances - 1, 0, -1) if cores_needed(size, n, deployment=deployment) <= free), 0)
    if fewer:
        suggestions.append(f"Use {fewer} instance{'s' if fewer > 1 else ''} of {sku} instead of {instances}")
    for other in usable(sizes, candidates or []):
        other_free, _ = usages.free_cores(other.key)
        if other.name != size.name and other.gpus >= min(size.gpus, 1) and (
                other_free is None or cores_needed(other, instances, deployment=deployment) <= other_free):
            suggestions.append(f"Use {other.name} ({other.cores} cores, {other.gpus} GPU; "
                               f"{'no limit' if other_free is None else f'{other_free} cores free'})")
            break
    if card is not None and card.shared_quota:
        suggestions.append(f"{card.name} may also be deployed on Azure ML's shared quota pool (temporary, for "
                           "testing) from its model card in Azure ML studio; Azure's REST API and azure-ai-ml "
                           "have no setting for it, so fmbot cannot request it")
    suggestions.append(QUOTA_HELP)
    return QuotaCheck(ok=False, suggestions=suggestions,
                      message=f"{instances} × {sku} needs {need} {size.family} cores{reserve} but only {free} are "
                              f"free ({bound})")

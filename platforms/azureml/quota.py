"""Quota pre-flight: will `instances` of a VM size fit in the workspace region's free cores?

Azure counts quota in cores per VM family, so the check is `cores per instance × instances`
against `limit − current` of that family's usage. `compute.list_usage()` and `list_sizes()` in
azure-ai-ml 1.35.2 copy the REST dict without renaming, so the used cores sit under `currentValue`
(not `current_value`) and a size's cores under `vCPUs` (not `v_cp_us`); both spellings are read.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import call
from platforms.base import ModelCard, QuotaCheck


class FamilyUsage(BaseModel):
    family: str
    limit: int
    used: int

    @property
    def free(self) -> int:
        return max(self.limit - self.used, 0)


class VmSizeInfo(BaseModel):
    name: str
    family: str
    cores: int
    gpus: int = 0


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def read_usages(clients: AzureClients) -> dict[str, FamilyUsage]:
    usages = call(lambda: list(clients.workspace.compute.list_usage()), what="read compute quota", scope="quota")
    result = {}
    for usage in usages:
        raw = vars(usage)
        name = _field(_field(raw, "name"), "value")
        if name:
            result[name.lower()] = FamilyUsage(family=name, limit=int(_field(raw, "limit") or 0),
                                               used=int(_field(raw, "current_value", "currentValue") or 0))
    return result


def read_sizes(clients: AzureClients) -> dict[str, VmSizeInfo]:
    sizes = call(lambda: list(clients.workspace.compute.list_sizes()), what="read VM sizes", scope="quota")
    result = {}
    for size in sizes:
        raw = vars(size)
        name = _field(raw, "name")
        if name:
            result[name.lower()] = VmSizeInfo(name=name, family=_field(raw, "family") or "",
                                              cores=int(_field(raw, "v_cp_us", "vCPUs") or 0),
                                              gpus=int(_field(raw, "gpus") or 0))
    return result


def check(usages: dict[str, FamilyUsage], sizes: dict[str, VmSizeInfo], sku: str, instances: int,
          card: ModelCard | None = None, candidates: list[str] | None = None) -> QuotaCheck:
    """Pure arithmetic over what Azure reported, so the wording is testable and reused by every form."""
    size = sizes.get(sku.lower())
    if size is None:
        return QuotaCheck(ok=False, message=f"{sku} is not offered in this workspace's region",
                          suggestions=[f"Use one of: {', '.join(sorted(s.name for s in sizes.values())[:8])}"])
    usage = usages.get(size.family.lower())
    need = size.cores * instances
    if usage is None:
        return QuotaCheck(ok=True, message=f"Azure reports no quota for the {size.family} family; {need} cores may be refused")
    if need <= usage.free:
        return QuotaCheck(ok=True, message=f"{instances} × {sku} needs {need} {size.family} cores; {usage.free} of {usage.limit} are free")
    suggestions = []
    fewer = usage.free // size.cores if size.cores else 0
    if fewer >= 1 and fewer < instances:
        suggestions.append(f"Use {fewer} instance{'s' if fewer > 1 else ''} of {sku} instead of {instances}")
    for name in candidates or []:
        other = sizes.get(name.lower())
        other_usage = usages.get(other.family.lower()) if other else None
        if other and other.name != size.name and other_usage and other.cores * instances <= other_usage.free:
            suggestions.append(f"Use {other.name} ({other.cores} cores, {other_usage.free} {other.family} cores free)")
    if card is not None and card.shared_quota:
        suggestions.append(f"{card.name} may use Azure ML's shared quota (temporary, for evaluation and testing): "
                           "choose shared quota in the form")
    if not suggestions:
        suggestions.append(f"Ask for more {size.family} quota in the Azure portal (Quotas → Machine learning)")
    return QuotaCheck(ok=False, suggestions=suggestions,
                      message=f"{instances} × {sku} needs {need} {size.family} cores but only {usage.free} of "
                              f"{usage.limit} are free in this region")

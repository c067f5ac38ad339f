"""Where each step of a registry pipeline runs: a workspace cluster, or serverless on explicit sizes.

Every pipeline fmbot submits names a VM size for every serverless step, because the components'
own defaults name sizes Azure has retired (Standard_nc24rs_v3, STANDARD_NC6s_v3: NC v3). The GPU
size is the user's choice, else the model's recommended or allowed sizes, each checked against the
sizes the region lists; the CPU steps (model import, preprocessing) get a CPU size of their own; the
GPUs per node come from the chosen size, as the foundation-model notebooks read them.
"""

from __future__ import annotations

from pydantic import BaseModel

from platforms.azureml import quota
from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import AzureNotFound, call
from platforms.azureml.quota import VmSizeInfo
from platforms.base import PlatformError

SERVERLESS = "serverless"


class Placement(BaseModel):
    """`cluster` runs every step; otherwise `size` runs the model steps and `cpu_size` the CPU steps."""

    cluster: str | None = None
    size: str | None = None
    cpu_size: str | None = None
    gpus: int = 0

    @property
    def compute(self) -> str:
        return self.cluster or SERVERLESS


def place(clients: AzureClients, chosen: str | None, *, allowed: list[str], recommended: list[str],
          purpose: str, gpu: bool | None) -> Placement:
    """`gpu`: True for training, None where the model's own list decides (evaluation sizes include CPUs)."""
    sizes = quota.read_sizes(clients)
    if chosen and not chosen.startswith("Standard_") and chosen != SERVERLESS:
        return _cluster(clients, chosen, sizes)
    cpu = quota.cpu_step_size(sizes)
    if chosen and chosen != SERVERLESS:
        size = _named(sizes, chosen, allowed, purpose)
    else:
        # No list at all (a Hugging Face id outside the catalog): the smallest current size of the right kind.
        names = recommended + allowed or [s.name for s in sorted(sizes.values(), key=lambda s: (s.gpus, s.cores))]
        size = _default(sizes, names, gpu=gpu) or (None if gpu else cpu)
        if size is None:
            offered = [s.name for s in sizes.values() if not s.retired and (gpu is None or (s.gpus > 0) == gpu)][:8]
            raise PlatformError(f"none of the sizes allowed for {purpose} is offered in this region",
                                hint=f"Choose a compute: {', '.join(offered) or 'create a cluster in the workspace'}")
    return Placement(size=size.name, cpu_size=(cpu.name if cpu else size.name), gpus=size.gpus)


def _cluster(clients: AzureClients, name: str, sizes: dict[str, VmSizeInfo]) -> Placement:
    try:
        cluster = call(lambda: clients.workspace.compute.get(name), what=f"read the compute {name}")
    except AzureNotFound:
        raise PlatformError(f'the workspace has no compute named "{name}"',
                            hint="Pick one of the clusters the form lists, or a serverless VM size") from None
    size = sizes.get(str(getattr(cluster, "size", "") or "").lower())
    if size is not None and size.retired:
        raise PlatformError(f"the cluster {name} runs on {size.name}, which Azure has retired",
                            hint="Use another cluster or a serverless VM size")
    return Placement(cluster=name, gpus=size.gpus if size else 0)


def _named(sizes: dict[str, VmSizeInfo], name: str, allowed: list[str], purpose: str) -> VmSizeInfo:
    size = sizes.get(name.lower())
    usable = [s.name for s in quota.usable(sizes, allowed)]
    if size is None:
        raise PlatformError(f"{name} is not offered in this workspace's region",
                            hint=f"Use one of: {', '.join(usable)}" if usable else "See `quota` for the sizes offered")
    if size.retired:
        raise PlatformError(f"{name} ({size.family}) is retired by Azure",
                            hint=f"Use one of: {', '.join(usable)}" if usable else "See `quota` for current sizes")
    if allowed and size.name.lower() not in {a.lower() for a in allowed}:
        raise PlatformError(f"{name} is not among the sizes this model allows for {purpose}",
                            hint=f"Use one of: {', '.join(usable) or ', '.join(allowed[:8])}")
    return size


def _default(sizes: dict[str, VmSizeInfo], names: list[str], *, gpu: bool | None) -> VmSizeInfo | None:
    candidates = [s for s in quota.usable(sizes, names) if gpu is None or (s.gpus > 0) == gpu]
    return candidates[0] if candidates else None

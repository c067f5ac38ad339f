"""`deploy`, `endpoints`, `rotate-key` and `delete-endpoint`: model endpoints and who may see their keys.

A deploy is a queued job (JobRecord kind "deploy"): loading a model into serving processes takes
seconds on the local platform and many minutes on Azure ML, and the ledger gives both the same
`status` and Slack thread updates. Everything checkable up front (model, task, name rule, instance
count, serverless only for models offered so, name already taken) is refused here, before anything is recorded. A key is shown only to
whoever deployed the endpoint (or an admin); the ledger never holds it. A local endpoint's key is
handed over once (`Platform.pick_up_endpoint_key`); after that its owner rotates it to get a new one.
"""

from __future__ import annotations

import socket

from typing import ClassVar

from handlers import policy
from handlers.catalog import require_task
from handlers.errors import UserError
from handlers.jobs import JobRequest, submit
from platforms.base import DeploySpec, EndpointInfo
from workers.ledger import JobKind, JobRecord
from workers.runtime import Runtime


REMOTE_DELETE_WAIT_SECONDS = 45.0  # the host's worker signals, then waits up to 2 × 15 s for the processes


class DeployRequest(JobRequest):
    """The endpoint's owner is always the requester, whatever the spec says."""

    kind: ClassVar[JobKind] = "deploy"
    spec: DeploySpec


def start_deploy(rt: Runtime, request: DeployRequest) -> JobRecord:
    spec = request.spec
    card = rt.platform.get_model(spec.model)
    task = require_task(card, spec.task)
    if spec.serverless and not card.serverless:
        raise UserError(f"{card.ref} is not offered as a serverless (pay-per-token) API, so it cannot be deployed "
                        "serverless", hint="Deploy it to managed compute instead: leave out --serverless (in Slack, "
                        "choose managed compute and a VM size)")
    rt.platform.check_deploy(card, spec)
    if any(e.name == spec.endpoint for e in rt.platform.list_endpoints()):
        raise UserError(f'an endpoint named "{spec.endpoint}" already exists',
                        hint="Pick another name, or delete that endpoint first", remedy=("delete-endpoint", spec.endpoint),
                        field="endpoint")
    spec = spec.model_copy(update={"model": card.ref, "task": task, "owner": request.requester})
    return submit(rt, request.model_copy(update={"spec": spec}))


def list_endpoints(rt: Runtime, *, owner: str | None = None) -> list[EndpointInfo]:
    """Every endpoint, or (with `owner`) those that person may see the keys of."""
    infos = rt.platform.list_endpoints()
    return [e for e in infos if _may_act(e, owner)] if owner else infos


def _may_act(info: EndpointInfo, user: str) -> bool:
    """Its owner may act on an endpoint, and admins on any; an endpoint whose owner is unknown
    (made outside fmbot, or before owners were recorded) is for admins only, never for everyone."""
    return user in policy.current().admins or (info.owner is not None and info.owner == user)


def _own(info: EndpointInfo, user: str, action: str) -> EndpointInfo:
    if not _may_act(info, user):
        whose = "someone else" if info.owner else "someone fmbot does not know"
        raise UserError(f"{info.name} was deployed by {whose}, so you cannot {action}",
                        hint=f"Ask them, or an admin. {policy.current().who_grants()}")
    return info


def endpoint_for_owner(rt: Runtime, name: str, user: str) -> EndpointInfo:
    """The endpoint with its key, for the person who deployed it; `key` is None once a key kept
    only as a hash has been picked up (the surface then offers `rotate-key`)."""
    info = _own(rt.platform.get_endpoint(name.strip()), user, "see its key")
    return info.model_copy(update={"key": rt.platform.pick_up_endpoint_key(info.name)})


def _on_its_host(rt: Runtime, info: EndpointInfo, function: str, doing: str) -> dict | None:
    """Run `workers.jobs.<function>` on the host that serves `info` and wait for it: None when it
    has not finished in time, its result otherwise."""
    try:
        return rt.run_on_host(info.host, f"workers.jobs.{function}", info.name, wait=REMOTE_DELETE_WAIT_SECONDS)
    except RuntimeError as exc:
        raise UserError(f"{info.name} could not be {doing} on {info.host}: {exc}",
                        hint="See `endpoints`; try again, or ask an admin to look at that host's worker") from None


def _here(info: EndpointInfo) -> bool:
    return info.host is None or info.host == socket.gethostname()


def rotate_endpoint_key(rt: Runtime, name: str, user: str, *, pick_up: bool = True) -> EndpointInfo:
    """A new key for the owner (or an admin), the old one void at once; like a delete it runs where
    the endpoint is served, since only that host can replace the hash its processes read. The new
    key travels through the pickup slot, never through the job's result; `pick_up=False` leaves it
    there for a surface that hands it over privately later (Teams' owner-only card refresh)."""
    info = _own(rt.platform.get_endpoint(name.strip()), user, "rotate its key")
    if _here(info):
        rt.platform.rotate_endpoint_key(info.name)
    elif _on_its_host(rt, info, "rotate_endpoint_key", "rotated") is None:
        raise UserError(f"the worker on {info.host} has not rotated the key of {info.name} yet",
                        hint="The old key works until it has; then Show key (or `endpoints --show-keys`) gives "
                             "you the new one")
    return info.model_copy(update={"key": rt.platform.pick_up_endpoint_key(info.name) if pick_up else None})


def delete_endpoint(rt: Runtime, name: str, user: str) -> EndpointInfo:
    """Stopped where it runs: a local endpoint served on another host (the worker container, when
    the bot runs in its own) is deleted by a job on that host's queue, since its processes can be
    signalled only from there; forgetting it here would leave it serving with a valid key."""
    info = _own(rt.platform.get_endpoint(name.strip()), user, "delete it")
    if _here(info):
        return rt.platform.delete_endpoint(info.name)
    done = _on_its_host(rt, info, "delete_endpoint", "deleted")
    if done is None:
        return info.model_copy(update={"message": f"its worker on {info.host} is stopping it"})
    return EndpointInfo.model_validate(done)

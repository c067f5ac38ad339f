"""What `fmbot doctor --azure` checks against a user's own workspace, in the order things depend on each other.

Each step is one real call through the same clients fmbot uses; a refusal is explained by
`errors.explain`, which names the built-in role that is missing. The first failing step of the
credential, workspace or registry stops the rest (they would all fail for the same reason); the
components, quota and sizes are checked one by one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from platforms.azureml import quota
from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import AzureNotFound, call
from platforms.azureml.evaluation import EVALUATION_PIPELINE, METRICS, PREDICTION
from platforms.azureml.finetune import PIPELINES
from platforms.azureml.imports import IMPORT_COMPONENT

Step = tuple[str, bool, str, str]  # name, ok, detail, fix


def _token(clients: AzureClients) -> str:
    token = clients.credential.get_token(f"{clients.arm_base_url.rstrip('/')}/.default")
    return f"token obtained (valid {max(token.expires_on - int(time.time()), 0) // 60} min)"


def _workspace(clients: AzureClients) -> str:
    workspace = call(lambda: clients.workspace.workspaces.get(clients.target.workspace), what="read the workspace")
    return f"{workspace.name} in {workspace.location}"


def _registry(clients: AzureClients) -> str:
    first = call(lambda: next(iter(clients.registry.models.list()), None), what="list the registry's models",
                 scope="registry")
    return f"{clients.target.registry} lists models" + (f" (e.g. {first.name})" if first else "")


def _component(clients: AzureClients, name: str) -> str:
    component = call(lambda: clients.registry.components.get(name, label="latest"),
                     what=f"read the registry component {name}", scope="registry")
    return f"{component.name} {component.version}"


def _evaluation(clients: AzureClients) -> str:
    try:
        return _component(clients, EVALUATION_PIPELINE)
    except AzureNotFound:
        return f"{_component(clients, PREDICTION)} + {_component(clients, METRICS)} (two-step evaluation)"


def _quota(clients: AzureClients) -> str:
    usages = quota.read_usages(clients)
    regional = usages.regional
    total = ("unlimited" if regional and regional.free is None
             else f"{regional.free} of {regional.limit} regional dedicated cores free" if regional else "no regional total")
    return f"{len(usages.families)} VM families with dedicated quota; {total}"


def _sizes(clients: AzureClients) -> str:
    sizes = quota.read_sizes(clients)
    gpus = [s for s in sizes.values() if s.gpus and not s.retired]
    retired = sum(s.retired for s in sizes.values())
    return f"{len(sizes)} sizes ({len(gpus)} current GPU sizes, {retired} retired ones fmbot will not use)"


def run(clients: AzureClients) -> Iterator[Step]:
    steps: list[tuple[str, Callable[[AzureClients], str], str, bool]] = [
        ("azure credential", _token, "Sign in (`az login`), or set up workload identity / managed identity", True),
        ("azure ml workspace", _workspace, "Check AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE",
         True),
        ("azure ml registry", _registry, "Check AZUREML_REGISTRY (the public one is azureml)", True),
        *[(f"component {c}", lambda cl, c=c: _component(cl, c), "The registry no longer serves it: update fmbot", False)
          for c in (*PIPELINES.values(), IMPORT_COMPONENT)],
        ("component evaluation", _evaluation, "The registry serves neither evaluation path: update fmbot", False),
        ("azure quota", _quota, "Quota is read at subscription scope", False),
        ("azure vm sizes", _sizes, "Sizes are read at subscription scope", False),
    ]
    for name, work, fix, gates in steps:
        try:
            yield name, True, work(clients), ""
        except Exception as exc:  # the credential raises azure-identity's own errors, the rest PlatformError
            yield name, False, _first_line(exc), _fix(exc, fix)
            if gates:  # everything after it would fail for the same reason
                return


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


def _fix(exc: BaseException, default: str) -> str:
    """A refusal's own hint names the missing role; otherwise the step's advice."""
    return getattr(exc, "hint", None) or default

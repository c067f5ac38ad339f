"""Turn Azure failures into retries or into sentences a user can act on.

`azure-core`'s own retry policy already repeats 429/5xx a few times inside each SDK call; what
reaches `call` is what is left after that (throttling that outlasted it, a gateway timeout, a
dropped connection), so it gets a few more tries with growing pauses. Authentication and
permission failures are never retried: they are explained with the role that is missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from platforms.base import PlatformError

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
BACKOFF_SECONDS = (1.0, 4.0, 15.0)

# What each kind of call needs, named as the Azure portal names the built-in roles.
ROLES = {
    "registry": "AzureML Registry User on the registry (the public azureml registry needs no role)",
    "workspace": "AzureML Data Scientist on the workspace",
    "endpoint": "AzureML Data Scientist on the workspace (it covers online and serverless endpoints)",
    "quota": "Reader on the subscription (usages and VM sizes are read at subscription scope)",
    "marketplace": "Contributor on the subscription, or the Marketplace permissions "
                   "Microsoft.MarketplaceOrdering/agreements/* and Microsoft.SaaS/register/action",
}


class AzureNotFound(PlatformError):
    """Azure answered 404: callers that have a fallback (an older component, another catalog) catch this."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code in TRANSIENT_STATUS


def _not_found(exc: BaseException) -> bool:
    """The SDK turns some 404s into its own ValidationException before we see them."""
    from azure.ai.ml.exceptions import ValidationErrorType

    return getattr(exc, "error_type", None) == ValidationErrorType.RESOURCE_NOT_FOUND


def explain(exc: BaseException, *, what: str, scope: str) -> PlatformError:
    """A PlatformError saying what failed, in words, and what the user or an admin can do."""
    status = getattr(exc, "status_code", None)
    code = getattr(getattr(exc, "error", None), "code", None) or ""
    role = ROLES.get(scope, ROLES["workspace"])
    if isinstance(exc, ClientAuthenticationError) and status in (None, 401):
        return PlatformError(f"Azure did not accept fmbot's sign-in while trying to {what}",
                             hint="Run `az login` (laptop) or give the bot a managed identity, then restart it")
    if status == 401:
        return PlatformError(f"Azure did not accept fmbot's sign-in while trying to {what}",
                             hint="Run `az login` (laptop) or check the bot's managed identity, then restart it")
    if status == 403 or code in ("AuthorizationFailed", "Forbidden"):
        return PlatformError(f"fmbot's Azure identity may not {what}",
                             hint=f"Ask an admin to grant it {role}")
    if isinstance(exc, ResourceNotFoundError) or status == 404 or _not_found(exc):
        return AzureNotFound(f"Azure found nothing to {what}", hint="Check the name and the workspace settings")
    if is_transient(exc):
        return PlatformError(f"Azure is busy or unreachable and could not {what}", hint="Try again in a few minutes")
    return PlatformError(f"Azure could not {what}: {_first_message(exc)}")


def _first_message(exc: BaseException) -> str:
    """The SDK's validation errors are a JSON document listing each problem; its first one says most."""
    message = (getattr(exc, "message", None) or str(exc) or type(exc).__name__).strip()
    try:
        errors = json.loads(message).get("errors") or []
        return f"{errors[0]['path']}: {errors[0]['message'].splitlines()[0]}" if errors else message
    except (ValueError, AttributeError, KeyError, TypeError):
        return message.splitlines()[0]


def call(fn: Callable[[], T], *, what: str, scope: str = "workspace",
         backoff: tuple[float, ...] | None = None) -> T:
    """Run one SDK call: transient failures again after a pause, the rest explained."""
    pauses = list(BACKOFF_SECONDS if backoff is None else backoff)
    while True:
        try:
            return fn()
        except PlatformError:
            raise
        except Exception as exc:  # the SDK raises azure-core errors and its own MlException
            if not pauses or not is_transient(exc):
                raise explain(exc, what=what, scope=scope) from exc
            pause = pauses.pop(0)
            log.warning("azure: %s failed (%s), retrying in %.0fs", what, exc, pause)
            time.sleep(pause)

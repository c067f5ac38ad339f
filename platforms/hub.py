"""The Hugging Face hub as every platform imports from it: whether it is reachable, how big a model
is there, and its errors as fmbot's own.

A model's size is read before anything is recorded (`handlers.limits.check_import`) and again
before a download (`platforms.local.imports`), from the hub's own file sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from platforms.base import PlatformError


def hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}
    return flag or constants.HF_HUB_OFFLINE


@contextmanager
def hub_errors(model_id: str) -> Iterator[None]:
    """The hub's refusals and outages, as messages that say what to do instead."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if hub_offline():
        raise PlatformError(f"the Hugging Face hub is unreachable: HF_HUB_OFFLINE is set, so {model_id} cannot be "
                            "downloaded", hint="Import a downloaded copy with `--from PATH`, or unset HF_HUB_OFFLINE")
    try:
        yield
    except PlatformError:
        raise
    except GatedRepoError:
        raise PlatformError(f"{model_id} is gated on the Hugging Face hub",
                            hint="Accept its terms on huggingface.co and set HF_TOKEN, or import with `--from PATH`") from None
    except RepositoryNotFoundError:
        raise PlatformError(f"{model_id} is not on the Hugging Face hub (or is private)",
                            hint="Check the id on huggingface.co; private models need HF_TOKEN") from None
    except Exception as exc:
        raise PlatformError(f"the Hugging Face hub is unreachable from this machine ({type(exc).__name__})",
                            hint="Import a downloaded copy with `--from PATH`") from exc


def hub_size(model_id: str) -> int:
    """The bytes a download of `model_id` would take: the sum of its files' sizes where the hub
    lists them all (it does when asked for `blobs`), else the storage the hub says the repository
    uses (`usedStorage`, every revision: never less than the model). A hub answer without sizes
    (an older hub, a mirror) must not read as an empty model that any limit lets through."""
    from huggingface_hub import HfApi

    with hub_errors(model_id):
        info = HfApi().model_info(model_id, files_metadata=True)
    sizes = [sibling.size for sibling in info.siblings or []]
    if sizes and None not in sizes:
        return sum(size for size in sizes if size is not None)
    if info.used_storage is not None:
        return int(info.used_storage)
    raise PlatformError(f"the Hugging Face hub does not say how big {model_id} is, so it cannot be held to the "
                        "import size limit", hint="Import a downloaded copy with `--from PATH`")

"""Checking a dataset before any job is recorded for it."""

from __future__ import annotations

from pathlib import Path

from handlers import policy
from handlers.errors import UserError
from platforms.base import DataRef
from platforms.datasets import ColumnMapping, validate_file


def check_data(ref: DataRef, mapping: ColumnMapping, *, max_bytes: int) -> int:
    """Read and validate a local dataset file as a stream (no row is kept); returns its row count.
    Registered assets are read remotely."""
    if ref.path.startswith("azureml:"):
        return 0
    return validate_file(Path(ref.path), mapping, ref.name, max_bytes=max_bytes).rows


def check_data_asset(reference: str, label: str) -> str:
    """A data asset a chat user names, if the policy lists it. Raw `azureml://` URIs (datastore
    paths, other workspaces) are never taken: they would reach data no list could name."""
    if reference.startswith("azureml://"):
        raise UserError(f"{label}: raw azureml:// paths are not accepted",
                        hint="Name a registered data asset, azureml:<name>:<version>, that the access policy lists")
    name, _, version = reference.removeprefix("azureml:").partition(":")
    if not policy.current().allows_data_asset(name, version or None):
        raise UserError(f"{label}: the data asset {name} is not one fmbot may read",
                        hint=f"Ask an admin to add it to data_assets in the access policy. {policy.current().who_grants()}")
    return reference

"""Datasets: checking one before any job is recorded for it, previewing it, and registered datasets
(`data register|list|show|delete`), which forms and `--train data:NAME[:VERSION]` refer to."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from handlers import policy
from handlers.errors import UserError
from platforms.base import DataRef, DatasetInfo, JobSpec
from platforms.datasets import (
    ColumnMapping,
    DatasetError,
    DatasetSummary,
    Preview,
    RowPolicy,
    preview_file,
    read_columns,
    read_rows,
    validate_file,
)
from workers.ledger import DataUse
from workers.runtime import Runtime

REGISTERED = "data:"  # how a registered dataset is named where a file could be: data:NAME[:VERSION]
Role = Literal["train", "validation", "test"]


def check_data(ref: DataRef, mapping: ColumnMapping, *, max_bytes: int, training: bool = True,
               rows: RowPolicy = RowPolicy()) -> DatasetSummary:
    """Read and validate a local dataset file as a stream (no row is kept). Bad rows are refused
    with how many there are, or skipped under `rows`. Azure data assets are read remotely."""
    if ref.path.startswith("azureml:"):
        return DatasetSummary(rows=0)
    return validate_file(Path(ref.path), mapping, ref.name, max_bytes=max_bytes, training=training, rows=rows)


def data_use(role: Role, ref: DataRef, summary: DatasetSummary) -> DataUse:
    return DataUse(role=role, name=ref.name, dataset=ref.dataset, rows=summary.rows, skipped=summary.skipped,
                   skipped_rows=[row.text() for row in summary.bad_rows])


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


def registered_ref(rt: Runtime, ref: DataRef | None) -> DataRef | None:
    """A `data:NAME[:VERSION]` reference as the job will read it (the latest version when none is
    named, pinned now so the job record names the version); any other reference as it is."""
    if ref is None or not ref.path.startswith(REGISTERED):
        return ref
    return rt.platform.dataset_input(rt.platform.get_dataset(ref.path.removeprefix(REGISTERED)))


def resolve_registered(rt: Runtime, spec: JobSpec) -> JobSpec:
    """The spec with every registered dataset it names resolved (`registered_ref`)."""
    fields = {name: registered_ref(rt, getattr(spec, name)) for name in ("train", "validation", "test")
              if isinstance(getattr(spec, name, None), DataRef)}
    return spec.model_copy(update=fields)


def preview(ref: DataRef, mapping: ColumnMapping, *, max_bytes: int, training: bool = True,
            rows: RowPolicy = RowPolicy(), max_length: int = 128, split_parts: int = 0,
            test: DataRef | None = None) -> Preview:
    """What the mapped file looks like to the model (`platforms.datasets.preview`)."""
    if ref.path.startswith("azureml:"):
        raise UserError(f"{ref.name} is an Azure ML data asset, which Azure reads itself",
                        hint="Preview a local file or a registered dataset")
    other = (Path(test.path), test.name) if test is not None and not test.path.startswith("azureml:") else None
    return preview_file(Path(ref.path), mapping, ref.name, max_bytes=max_bytes, training=training, rows=rows,
                        max_length=max_length, split_parts=split_parts, test=other)


# ------------------------------------------------------------------ registered datasets


def name_for_file(file_name: str) -> str:
    """A dataset name a chat's file can be registered under without asking: its stem, with what a
    name may not hold turned into hyphens (both chat surfaces name a shared file's dataset so)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(file_name).stem).strip("-._") or "dataset"


def register_dataset(rt: Runtime, name: str, path: Path, *, file_name: str | None = None, description: str = "",
                     requester: str, max_bytes: int = 100 * 1024 * 1024) -> DatasetInfo:
    """Check the file reads (every record, any format fmbot takes), count its rows and columns, and
    keep it as the next version of `name` on the platform."""
    label = file_name or path.name
    columns = read_columns(path, label)
    rows = sum(1 for _ in read_rows(path, label, max_bytes=max_bytes))
    if not rows:
        raise DatasetError("holds no records", file=label, hint="Register a file with at least one row")
    info = DatasetInfo(name=name, version="0", path="", file_name=Path(label).name, rows=rows, columns=columns,
                       registered_by=requester, description=description)
    return rt.platform.register_dataset(name, path, info)


def list_datasets(rt: Runtime) -> list[DatasetInfo]:
    return rt.platform.list_datasets()


def show_dataset(rt: Runtime, ref: str) -> DatasetInfo:
    return rt.platform.get_dataset(ref.removeprefix(REGISTERED))


def delete_dataset(rt: Runtime, ref: str, requester: str, *, admin: bool = False) -> DatasetInfo:
    """Only whoever registered a version (or an admin, or the operator's CLI) deletes it."""
    ref = ref.removeprefix(REGISTERED)
    info = rt.platform.get_dataset(ref) if ":" in ref else None
    if (info is not None and not admin and info.registered_by not in (None, requester)
            and requester not in policy.current().admins):
        raise UserError(f"{info.ref} was registered by someone else, so you cannot delete it",
                        hint=f"Ask {policy.mention(info.registered_by)} or an admin")
    return rt.platform.delete_dataset(ref)

"""Datasets as pipeline inputs: a registered asset as it is, a user's file uploaded as a `uri_file` asset.

A user's file is first read with fmbot's own reader (any of JSONL/JSON/CSV/TSV, columns mapped,
every row checked) and written back as JSONL keyed by the task's column keys, so the Azure
component always gets JSON Lines and the column-key inputs are the task keys themselves. A
registered asset (`azureml:<name>:<version>`) is passed through with the user's column names.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from azure.ai.ml import Input
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import Data

from platforms.azureml.clients import AzureClients
from platforms.azureml.errors import call
from platforms.base import DataRef, DatasetInfo, DatasetNotFound, PlatformError
from platforms.datasets import ColumnMapping, RowPolicy, load_examples, split_examples
from platforms.tasks import Task

ASSET_PREFIX = "azureml:"


def is_asset(ref: DataRef) -> bool:
    return ref.path.startswith(ASSET_PREFIX)


Shape = Callable[[dict[str, Any]], dict[str, Any]]


def _rows(examples: list[dict[str, Any]], rename: dict[str, str], shape: Shape | None) -> list[dict[str, Any]]:
    rows = [{rename.get(key, key): value for key, value in e.items()} for e in examples] if rename else examples
    return [shape(row) for row in rows] if shape else rows


def prepare_rows(refs: dict[str, DataRef | None], mapping: ColumnMapping, *, split: dict[str, float] | None = None,
                 seed: int = 42, rename: dict[str, str] | None = None, shape: Shape | None = None,
                 training: bool = True, rows: RowPolicy | None = None) -> dict[str, list[dict[str, Any]]]:
    """The rows to upload per input: every local file read and checked, and the inputs without a file
    split off the first one's rows (seeded, stratified by label), keys renamed by `rename`, then each
    row put in the form the Azure component reads (`shape`)."""
    given = {name: ref for name, ref in refs.items() if ref is not None}
    first_name, first = next(iter(given.items()))
    parts = {first_name: load_examples(Path(first.path), mapping, first.name, training=training, rows=rows)}
    fractions = {name: (split or {}).get(name, 0.0) for name in refs if name not in given}
    wanted = [name for name, fraction in fractions.items() if fraction > 0]
    if wanted:
        rest, *split_off = split_examples(parts[first_name], [fractions[name] for name in wanted], seed=seed,
                                          stratify_key="label" if mapping.task == Task.TEXT_CLASSIFICATION else None)
        parts = {first_name: rest, **dict(zip(wanted, split_off))}
    for name, ref in given.items():
        if name != first_name:
            parts[name] = load_examples(Path(ref.path), mapping, ref.name, training=training, rows=rows)
    return {name: _rows(rows, rename or {}, shape) for name, rows in parts.items()}


class DataUploader:
    """Writes normalized JSONL under `data_dir`, registers it as a workspace data asset, and deletes
    the local copy once the SDK has uploaded it."""

    def __init__(self, clients: AzureClients, data_dir: Path):
        self.clients, self.data_dir = clients, data_dir

    def inputs(self, refs: dict[str, DataRef | None], mapping: ColumnMapping, *,
               split: dict[str, float] | None = None, seed: int = 42, prefix: str = "fmbot",
               rename: dict[str, str] | None = None, shape: Shape | None = None, training: bool = True,
               rows: RowPolicy | None = None) -> tuple[dict[str, Input], bool]:
        """Returns the Input per name and whether the data was uploaded (so column keys are task keys,
        or their `rename`d names). Registered assets are passed through; Azure reads them itself, so
        they are neither checked nor split here."""
        given = {name: ref for name, ref in refs.items() if ref is not None}
        if all(is_asset(ref) for ref in given.values()):
            return {name: Input(type=AssetTypes.URI_FILE, path=ref.path) for name, ref in given.items()}, False
        if any(is_asset(ref) for ref in given.values()):
            raise PlatformError("one job cannot mix uploaded files and registered data assets",
                                hint="Give every dataset as a file, or every one as azureml:<name>:<version>")
        tag = secrets.token_hex(4)
        parts = prepare_rows(refs, mapping, split=split, seed=seed, rename=rename, shape=shape, training=training,
                             rows=rows)
        return {name: self.upload(f"{prefix}-{name.replace('_', '-')}-{tag}", part)
                for name, part in parts.items()}, True

    def upload(self, asset_name: str, rows: list[dict[str, Any]]) -> Input:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / f"{asset_name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        asset = Data(name=asset_name, version="1", type=AssetTypes.URI_FILE, path=str(path),
                     description="uploaded by fmbot")
        try:
            created = call(lambda: self.clients.workspace.data.create_or_update(asset),
                           what=f"upload {path.name} as a data asset")
        finally:
            # The SDK has copied it to the workspace's datastore (or failed): the local copy is spent.
            path.unlink(missing_ok=True)
        return Input(type=AssetTypes.URI_FILE, path=f"{ASSET_PREFIX}{created.name}:{created.version}")


# Tags fmbot writes on a registered dataset's data asset: what the local platform keeps in dataset.json.
TAG_ROWS, TAG_COLUMNS, TAG_BY, TAG_SHA256, TAG_FILE = "fmbot_rows", "fmbot_columns", "fmbot_registered_by", \
    "fmbot_sha256", "fmbot_file"


def _info(asset: Data) -> DatasetInfo:
    tags = asset.tags or {}
    created = (asset.creation_context.created_at if asset.creation_context else None)
    return DatasetInfo(name=asset.name, version=str(asset.version), path=f"{ASSET_PREFIX}{asset.name}:{asset.version}",
                       file_name=tags.get(TAG_FILE) or Path(str(asset.path or asset.name)).name,
                       rows=int(tags[TAG_ROWS]) if str(tags.get(TAG_ROWS, "")).isdigit() else None,
                       columns=orjson.loads(tags[TAG_COLUMNS]) if tags.get(TAG_COLUMNS) else [],
                       sha256=tags.get(TAG_SHA256), registered_by=tags.get(TAG_BY),
                       description=asset.description or "", created_at=created)


class AzureDatasets:
    """Registered datasets as the workspace's `uri_file` data assets (`ml_client.data`): registering
    uploads the file to the default datastore as the next version, deleting archives a version."""

    def __init__(self, clients: AzureClients):
        self.clients = clients

    def _versions(self, name: str) -> list[DatasetInfo]:
        found = call(lambda: list(self.clients.workspace.data.list(name=name)), what=f"list data asset {name}")
        return sorted((_info(a) for a in found), key=lambda i: (not i.version.isdigit(), int(i.version) if i.version.isdigit() else 0))

    def list(self) -> list[DatasetInfo]:
        names = call(lambda: [c.name for c in self.clients.workspace.data.list()], what="list data assets")
        return [info for name in sorted(names) for info in self._versions(name)]

    def get(self, ref: str) -> DatasetInfo:
        name, _, version = ref.strip().removeprefix(ASSET_PREFIX).partition(":")
        versions = [i for i in self._versions(name) if not version or i.version == version]
        if not versions:
            raise DatasetNotFound(f'there is no registered dataset "{ref.strip()}" in the workspace',
                                  hint="See `data list`")
        return versions[-1]

    def register(self, name: str, path: Path, info: DatasetInfo) -> DatasetInfo:
        from platforms.local.datasets import file_sha256

        sha256 = file_sha256(path)
        existing = self._versions(name)
        for version in existing:
            if version.sha256 == sha256:
                return version
        numbers = [int(i.version) for i in existing if i.version.isdigit()]
        asset = Data(name=name, version=str(max(numbers, default=0) + 1), type=AssetTypes.URI_FILE, path=str(path),
                     description=info.description or None,
                     tags={TAG_ROWS: str(info.rows or 0), TAG_COLUMNS: orjson.dumps(info.columns).decode(),
                           TAG_BY: info.registered_by or "", TAG_SHA256: sha256, TAG_FILE: info.file_name})
        created = call(lambda: self.clients.workspace.data.create_or_update(asset), what=f"register data asset {name}")
        return _info(created).model_copy(update={"size_bytes": path.stat().st_size})

    def delete(self, ref: str) -> DatasetInfo:
        info = self.get(ref)
        if ":" not in ref.removeprefix(ASSET_PREFIX):
            raise PlatformError(f'say which version of "{info.name}" to delete', hint=f"e.g. `data delete {info.ref}`")
        call(lambda: self.clients.workspace.data.archive(info.name, info.version), what=f"archive data asset {info.ref}")
        return info

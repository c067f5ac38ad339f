"""Registered datasets on the local platform: versioned, content-hashed copies in a folder.

`<root>/<name>/<version>/` holds the file as it was registered and `dataset.json` (what it holds, who
registered it). The folder is shared by the bot and the workers like the models folder, so a job
reads the very bytes that were checked. Registering bytes a version already holds returns that
version instead of adding one, the way a data asset's content hash is its identity on Azure.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from platforms.base import DatasetInfo, DatasetNotFound, PlatformError, check_model_name

INFO_FILE = "dataset.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


class LocalDatasets:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _name(self, name: str) -> str:
        try:
            return check_model_name(name)
        except ValueError as exc:
            raise PlatformError(str(exc).replace("model name", "dataset name"),
                                hint="Name it like reviews or support-tickets_2026") from None

    def _read(self, folder: Path) -> DatasetInfo:
        return DatasetInfo.model_validate_json((folder / INFO_FILE).read_text())

    def versions(self, name: str) -> list[DatasetInfo]:
        folder = self.root / self._name(name)
        found = [self._read(p.parent) for p in folder.glob(f"*/{INFO_FILE}")] if folder.is_dir() else []
        return sorted(found, key=lambda info: _version_key(info.version))

    def list(self) -> list[DatasetInfo]:
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []
        return [info for name in names for info in self.versions(name)]

    def get(self, ref: str) -> DatasetInfo:
        name, _, version = ref.strip().partition(":")
        versions = self.versions(name)
        if version:
            versions = [info for info in versions if info.version == version]
        if not versions:
            known = ", ".join(sorted({info.name for info in self.list()})) or "none yet"
            raise DatasetNotFound(f'there is no registered dataset "{ref.strip()}"',
                                  hint=f"Registered datasets: {known}. See `data list`")
        return versions[-1]

    def register(self, name: str, path: Path, info: DatasetInfo) -> DatasetInfo:
        """Copy the file in as the next version; the same bytes as an existing version return it."""
        name = self._name(name)
        sha256 = file_sha256(path)
        for existing in self.versions(name):
            if existing.sha256 == sha256:
                return existing
        (self.root / name).mkdir(parents=True, exist_ok=True)
        numbers = [int(i.version) for i in self.versions(name) if i.version.isdigit()]
        version = str(max(numbers, default=0) + 1)
        staging = Path(tempfile.mkdtemp(prefix=".register-", dir=self.root / name))
        try:
            target_file = staging / Path(info.file_name).name
            shutil.copyfile(path, target_file)
            final = self.root / name / version
            stored = info.model_copy(update={
                "name": name, "version": version, "path": str(final / target_file.name), "sha256": sha256,
                "size_bytes": target_file.stat().st_size, "created_at": datetime.now(UTC)})
            (staging / INFO_FILE).write_text(stored.model_dump_json(indent=2))
            os.rename(staging, final)  # a version appears whole, or not at all (two registering at once: one wins)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return stored

    def delete(self, ref: str) -> DatasetInfo:
        name, _, version = ref.strip().partition(":")
        if not version:
            raise PlatformError(f'say which version of "{name}" to delete',
                                hint=f"e.g. `data delete {name}:1`; versions are listed by `data show {name}`")
        info = self.get(ref)
        shutil.rmtree(self.root / info.name / info.version)
        return info

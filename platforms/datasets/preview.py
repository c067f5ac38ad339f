"""What a mapped file looks like to the model before anything trains on it.

The first rows as the model will see them (input and target, after mapping), the label
distribution (rows per class, labels per row's label set, tags per entity type), and warnings about
what would quietly spoil a job: a class too small for the split, rows in both the training and the
test data, texts that max length will cut, answers that are not in their context.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from platforms.datasets.examples import iter_examples
from platforms.datasets.mapping import ColumnMapping
from platforms.datasets.skipping import BadRow, BadRows, RowPolicy
from platforms.tasks import Task

FIRST_ROWS = 3
SHOWN_CHARS = 300
DISTRIBUTION_OF = {Task.TEXT_CLASSIFICATION: "rows per class", Task.TEXT_CLASSIFICATION_MULTILABEL: "rows per label",
                   Task.TOKEN_CLASSIFICATION: "tags per entity type"}


class PreviewRow(BaseModel):
    input: str
    target: str


class Preview(BaseModel):
    task: Task
    file: str
    rows: int
    skipped: int = 0
    bad_rows: list[BadRow] = []
    first: list[PreviewRow] = []
    distribution: dict[str, int] = {}
    distribution_of: str = ""
    warnings: list[str] = []


def _clip(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS - 1] + "…"


def _input_text(example: dict[str, Any]) -> str:
    """The text the model reads for one example (pairs joined as a tokenizer would join them)."""
    if "sentence1" in example:
        return example["sentence1"] + (f" [SEP] {example['sentence2']}" if example.get("sentence2") else "")
    if "tokens" in example:
        return " ".join(example["tokens"])
    if "question" in example:
        return f"{example['question']} [SEP] {example['context']}"
    if "messages" in example:
        return "\n".join(f"{m['role']}: {m['content']}" for m in example["messages"][:-1])
    return str(example.get("document") or example.get("source") or example.get("prompt") or "")


def _target_text(example: dict[str, Any]) -> str:
    if "labels" in example:
        return ", ".join(example["labels"]) or "(no label)"
    if "label" in example:
        return example["label"]
    if "tags" in example:
        return " ".join(example["tags"])
    if "answers" in example:
        return " | ".join(example["answers"]["text"])
    if "messages" in example:
        return example["messages"][-1]["content"]
    return str(example.get("summary") or example.get("target") or example.get("completion") or "")


def _distribution(example: dict[str, Any], counts: Counter[str]) -> None:
    if "label" in example:
        counts[example["label"]] += 1
    elif "labels" in example:
        counts.update(example["labels"])
    elif "tags" in example:
        counts.update(tag.split("-", 1)[-1] for tag in example["tags"] if tag != "O" and not tag.startswith("I-"))


def _fingerprint(example: dict[str, Any]) -> str:
    return hashlib.blake2b(_input_text(example).encode(), digest_size=12).hexdigest()


def preview_file(path: Path, mapping: ColumnMapping, name: str | None = None, *,
                 max_bytes: int = 100 * 1024 * 1024, training: bool = True, rows: RowPolicy = RowPolicy(),
                 max_length: int = 128, split_parts: int = 0, test: tuple[Path, str] | None = None) -> Preview:
    """Preview one file; `split_parts` is how many parts (validation, test) will be split off it,
    `test` a separate test file whose rows are looked for in this one."""
    label = name or path.name
    bad = BadRows()
    counts: Counter[str] = Counter()
    first: list[PreviewRow] = []
    seen: set[str] = set()
    good = long_rows = not_in_context = 0
    for example in iter_examples(path, mapping, label, max_bytes=max_bytes, training=training, bad=bad):
        good += 1
        if len(first) < FIRST_ROWS:
            first.append(PreviewRow(input=_clip(_input_text(example)), target=_clip(_target_text(example))))
        _distribution(example, counts)
        if len(_input_text(example).split()) > max_length:
            long_rows += 1
        if "answers" in example and any(text not in example["context"] for text in example["answers"]["text"]):
            not_in_context += 1
        if test is not None:
            seen.add(_fingerprint(example))
    bad.check(good, rows, label)
    warnings = []
    needed = split_parts + 1
    if split_parts and mapping.task == Task.TEXT_CLASSIFICATION:
        small = sorted(c for c, n in counts.items() if n < needed)
        if small:
            warnings.append(f"class{'es' if len(small) > 1 else ''} {', '.join(small[:5])} "
                            f"{'have' if len(small) > 1 else 'has'} fewer than {needed} rows, which a stratified "
                            f"split into {needed} parts needs: the split will not keep every class in every part")
    if mapping.task == Task.TEXT_CLASSIFICATION_MULTILABEL:
        rare = sorted(c for c, n in counts.items() if n < 2)
        if rare:
            warnings.append(f"label{'s' if len(rare) > 1 else ''} {', '.join(rare[:5])} "
                            f"{'occur' if len(rare) > 1 else 'occurs'} in one row only: too few to learn or to score")
    if long_rows:
        warnings.append(f"{long_rows} of {good} rows have more than {max_length} words, so more than max length "
                        f"({max_length} tokens): they will be cut")
    if not_in_context:
        warnings.append(f"{not_in_context} of {good} rows have an answer that is not in their context: "
                        "no span can match it, so those rows score 0")
    if test is not None:
        test_path, test_name = test
        overlap = total = 0
        for example in iter_examples(test_path, mapping, test_name, max_bytes=max_bytes, training=False,
                                     bad=BadRows()):
            total += 1
            overlap += _fingerprint(example) in seen
        if overlap:
            warnings.append(f"{overlap} of {total} rows of {test_name} also appear in {label}: "
                            "test scores on them measure memory, not skill")
    return Preview(task=mapping.task, file=label, rows=good, skipped=bad.count, bad_rows=bad.first, first=first,
                   distribution=dict(counts.most_common()), distribution_of=DISTRIBUTION_OF.get(mapping.task, ""),
                   warnings=warnings)

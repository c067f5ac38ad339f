"""Registered datasets and data previews as Adaptive Cards (pure builders; the dialog's preview too)."""

from __future__ import annotations

from bot.teams.ids import Verb
from bot.teams.limits import MAX_ACTIONS, clip
from bot.teams.state import SharedFile
from bot.teams.views.cards import Element, card, execute, facts, heading, text
from platforms.base import DatasetInfo
from platforms.datasets import Preview

MAX_LISTED = 40  # lines in a list answer; more would outgrow a card
DISTRIBUTION_SHOWN = 15


def _line(info: DatasetInfo) -> str:
    rows = f"{info.rows:,} rows" if info.rows is not None else "rows unknown"
    return (f"**{info.name}** v{info.version} · {rows} · {len(info.columns)} columns · {info.file_name}"
            + (f" · by {info.registered_by}" if info.registered_by else ""))


def dataset_list(infos: list[DatasetInfo]) -> Element:
    if not infos:
        return card([text("No registered datasets yet. Share a file in this chat and press its Register as dataset, "
                          "or send `data register NAME` after sharing it.")])
    body = [heading(f"Registered datasets: {len(infos)}")]
    body += [text(clip(_line(i), 500), spacing="Small") for i in infos[:MAX_LISTED]]
    if len(infos) > MAX_LISTED:
        body.append(text(f"and {len(infos) - MAX_LISTED} more", isSubtle=True))
    return card(body)


def file_received(shared: list[SharedFile]) -> Element:
    """The answer to files shared in the chat: the forms offer them, and a button per file registers
    it under a name made from the file's (a form is not needed first, unlike Slack's upload)."""
    names = ", ".join(clip(f.name, 200) for f in shared)
    body = [text(f"Got {names}: it is offered as data in the `finetune` and `evaluate` forms. "
                 "Register as dataset keeps it for later forms and `--train data:NAME`.")]
    return card(body, [execute(clip(f"Register {f.name} as dataset" if len(shared) > 1 else "Register as dataset", 80),
                               Verb.DATA_REGISTER, {"file": f.id}) for f in shared[:MAX_ACTIONS]])


def dataset_details(info: DatasetInfo) -> Element:
    pairs = [("Version", info.version), ("Rows", f"{info.rows:,}" if info.rows is not None else "unknown"),
             ("File", info.file_name), ("Columns", ", ".join(info.columns) or "-")]
    if info.registered_by:
        pairs.append(("Registered by", info.registered_by))
    body = [heading(f"Dataset {info.ref}"), facts(pairs)]
    if info.description:
        body.append(text(info.description))
    body.append(text(f"Use it in a dialog's registered dataset select, or `--train data:{info.ref}` on the CLI",
                     isSubtle=True, size="Small"))
    return card(body)


def preview_elements(preview: Preview) -> list[Element]:
    """One preview: the first rows as the model sees them, the distribution, the warnings."""
    body = [text(f"**Preview of {clip(preview.file, 200)}**: {preview.rows:,} rows"
                 + (f", {preview.skipped} bad rows skipped" if preview.skipped else ""))]
    body += [text(f"{number}. {clip(row.input, 200)} → **{clip(row.target, 100)}**", size="Small", spacing="None")
             for number, row in enumerate(preview.first, start=1)]
    if preview.distribution:
        items = list(preview.distribution.items())
        shown = ", ".join(f"{name} {count}" for name, count in items[:DISTRIBUTION_SHOWN])
        more = f" and {len(items) - DISTRIBUTION_SHOWN} more" if len(items) > DISTRIBUTION_SHOWN else ""
        body.append(text(f"_{preview.distribution_of}_: {shown}{more}", size="Small"))
    body += [text(f"⚠️ {clip(warning, 300)}", color="Warning", size="Small") for warning in preview.warnings]
    return body

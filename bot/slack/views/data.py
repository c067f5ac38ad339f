"""Registered datasets and data previews as Block Kit (pure builders; the form's preview block too)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

from bot.slack.limits import clip, cut
from bot.slack.views.mrkdwn import escape
from platforms.base import DatasetInfo
from platforms.datasets import Preview

MAX_LISTED = 40  # sections in a list answer; a message holds 50 blocks


def _line(info: DatasetInfo) -> str:
    rows = f"{info.rows:,} rows" if info.rows is not None else "rows unknown"
    return (f"*{escape(info.name)}* `v{escape(info.version)}` · {rows} · {len(info.columns)} columns · "
            f"`{escape(info.file_name)}`" + (f" · by {escape(info.registered_by)}" if info.registered_by else ""))


def dataset_list(infos: list[DatasetInfo]) -> dict[str, Any]:
    if not infos:
        text = "No registered datasets yet. Register an uploaded file with *Register as dataset* in a form."
        return {"text": text, "blocks": [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]}
    shown, more = cut(infos, MAX_LISTED)
    blocks = [SectionBlock(text=MarkdownTextObject(text=f"*Registered datasets*: {len(infos)}")).to_dict()]
    blocks += [SectionBlock(text=MarkdownTextObject(text=clip(_line(i), 3000))).to_dict() for i in shown]
    if more:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"and {more} more")]).to_dict())
    return {"text": f"{len(infos)} registered datasets", "blocks": blocks}


def dataset_details(info: DatasetInfo) -> dict[str, Any]:
    lines = [_line(info), f"Columns: {escape(', '.join(info.columns)) or '-'}"]
    if info.description:
        lines.append(escape(info.description))
    lines.append(f"Use it in a form's *Registered dataset* select, or `--train data:{escape(info.ref)}`")
    return {"text": f"dataset {info.ref}",
            "blocks": [SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), 3000))).to_dict()]}


def preview_text(preview: Preview) -> str:
    """One preview as mrkdwn: the first rows as the model sees them, the distribution, warnings."""
    lines = [f"*Preview of {escape(preview.file)}*: {preview.rows:,} rows"
             + (f", {preview.skipped} bad rows skipped" if preview.skipped else "")]
    for number, row in enumerate(preview.first, start=1):
        lines.append(f"{number}. `{escape(clip(row.input, 200))}` → *{escape(clip(row.target, 100))}*")
    if preview.distribution:
        items = list(preview.distribution.items())
        shown = ", ".join(f"{escape(name)} {count}" for name, count in items[:15])
        lines.append(f"_{preview.distribution_of}_: {shown}" + (f" and {len(items) - 15} more" if len(items) > 15 else ""))
    lines += [f":warning: {escape(warning)}" for warning in preview.warnings]
    return clip("\n".join(lines), 3000)


def preview_block(preview: Preview) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=preview_text(preview))).to_dict()

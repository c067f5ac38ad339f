"""How a comparison looks in Slack: its status message (a line per model), the ranked reply with a
table block, its chart, and the leaderboard. Pure functions of the comparison's record.

Slack shows one table block per message (up to 100 rows of 20 cells); the message's `text` carries
the same table as plain text for clients and notifications that do not draw tables.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
    TableBlock,
)

from bot.slack.ids import ActionId
from bot.slack.limits import OPTION_TEXT, SECTION_TEXT, TABLE_CELLS, clip
from bot.slack.views.jobs import BAR_WIDTH, SlackJobRenderer, duration
from bot.slack.views.mrkdwn import escape
from platforms.base import JobState
from workers.compare import ComparisonResult, Leaderboard, Member, Standing
from workers.ledger import JobRecord
from workers.notifier import ChatMessage, FileAttachment, JobEvent

ICONS = {JobState.QUEUED: ":hourglass_flowing_sand:", JobState.RUNNING: ":gear:",
         JobState.COMPLETED: ":white_check_mark:", JobState.FAILED: ":x:", JobState.CANCELED: ":no_entry_sign:"}
MODEL_CELL = 60
FIXED_COLUMNS = ("#", "model", "95% CI", "time", "size")
MEMBER_ERROR_CHARS = 150
EXAMPLE_CHARS = 300
BOARD_ROWS = 99  # a header row and 99 results fill a table block's 100 rows


def _bar(fraction: float) -> str:
    filled = round(fraction * BAR_WIDTH)
    return f"{'▓' * filled}{'░' * (BAR_WIDTH - filled)} {fraction:.0%}"


def member_line(member: Member) -> str:
    line = f"{ICONS[member.state]} `{escape(member.model)}` — {member.state}"
    if member.state == JobState.RUNNING and member.fraction is not None:
        line += f" {_bar(member.fraction)}"
    if member.error:
        line += f": {escape(member.error[:MEMBER_ERROR_CHARS])}"
    return line


def headline(record: JobRecord) -> str:
    count = len(record.spec.get("models", []))
    return (f"{ICONS[record.state]} *Comparison* `{record.id}` of {count} models ({record.task}) on "
            f"`{escape(record.spec.get('test', {}).get('name', ''))}` — *{record.state}*")


def status_message(record: JobRecord) -> ChatMessage:
    lines = [headline(record)]
    lines += [member_line(Member.model_validate(m)) for m in record.result.get("members", [])]
    left_out = record.result.get("left_out", {})
    if left_out:
        lines.append("Left out: " + "; ".join(f"`{escape(m)}` ({escape(why[:MEMBER_ERROR_CHARS])})"
                                              for m, why in left_out.items()))
    if record.output_model:
        lines.append(f"Best: `{escape(record.output_model)}` — ranking in the thread")
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), SECTION_TEXT))),
                         ContextBlock(elements=[MarkdownTextObject(
                             text=f"asked by <@{record.requester}> · elapsed {duration(record.elapsed_seconds)} · "
                                  f"trace {record.trace_id}")])]
    if not record.state.final:
        blocks.append(ActionsBlock(elements=[ButtonElement(text="Cancel", action_id=ActionId.CANCEL_JOB,
                                                           value=record.id, style="danger")]))
    return ChatMessage(text=f"comparison {record.id}: {record.state}", blocks=[b.to_dict() for b in blocks])


def _size(parameters: int | None) -> str:
    if not parameters:
        return "—"
    return f"{parameters / 1e6:.1f}M params" if parameters >= 1e5 else f"{parameters / 1e3:.0f}k params"


def _interval(standing: Standing) -> str:
    return f"{standing.interval[0]:.3f}–{standing.interval[1]:.3f}" if standing.interval else "—"


def metric_columns(result: ComparisonResult, by: str) -> list[str]:
    """The sort metric first, then the primary, then every other metric, as many as fit in 20 cells."""
    names = result.metric_names()
    first = list(dict.fromkeys([by, result.primary]))
    return (first + [n for n in names if n not in first])[:TABLE_CELLS - len(FIXED_COLUMNS)]


def _cell(text: str) -> dict[str, Any]:
    return {"type": "raw_text", "text": text or "—"}


def table_rows(result: ComparisonResult, by: str) -> list[list[str]]:
    names = metric_columns(result, by)
    rows = [["#", "model", *names, "95% CI", "time", "size"]]
    for position, s in enumerate(result.ordered(by), start=1):
        model = s.model if len(s.model) <= MODEL_CELL else s.model[:MODEL_CELL - 1] + "…"
        if s.rank is None:
            rows.append(["—", model, s.state.value, *(["—"] * (len(names) - 1)), "—", duration(s.seconds), "—"])
            continue
        rows.append([str(position), model, *(f"{s.metrics[n]:.4f}" if n in s.metrics else "—" for n in names),
                     _interval(s), duration(s.seconds), _size(s.parameters)])
    return rows


def _plain(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _example(index: int, input_text: str, reference: str, predictions: dict[str, str]) -> str:
    said = " · ".join(f"`{escape(model)}` → `{escape(prediction[:EXAMPLE_CHARS // 3])}`"
                      for model, prediction in predictions.items())
    return clip(f"*Row {index + 1}*: _{escape(input_text[:EXAMPLE_CHARS])}_\nreference `{escape(reference[:EXAMPLE_CHARS // 2])}`"
                f"\n{said}", SECTION_TEXT)


def sort_menu(record: JobRecord, result: ComparisonResult, by: str) -> StaticSelectElement:
    names = result.metric_names()[:100]
    options = [Option(text=f"Sort by {name}"[:OPTION_TEXT], value=f"{record.id} {name}"[:150]) for name in names]
    initial = next((o for o in options if o.value == f"{record.id} {by}"), None)
    return StaticSelectElement(action_id=ActionId.COMPARE_SORT, options=options, initial_option=initial,
                               placeholder="Sort by")


def result_reply(record: JobRecord, by: str | None = None) -> ChatMessage:
    """The ranked table (sortable by any metric), failures with their reasons, where the models
    disagree, flips against the base, and what to do next."""
    result = ComparisonResult.model_validate(record.result["comparison"])
    by = by or result.primary
    rows = table_rows(result, by)
    best = result.best
    summary = (f"*Ranked by {escape(by)}* on `{escape(result.dataset_name)}` · dataset `{result.dataset}` · "
               f"95% intervals by bootstrap over {result.rows} test rows")
    if best is not None:
        summary += f"\nBest: `{escape(best.model)}` — {result.primary} {best.primary:.4f} ({_interval(best)})"
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=clip(summary, SECTION_TEXT)),
                                      accessory=sort_menu(record, result, by))]
    unscored = result.without_interval()
    if unscored:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip("\n".join(
            f"No interval for `{escape(s.model)}`: {escape(s.rows_unavailable[:500])}" for s in unscored),
            SECTION_TEXT))))
    failed = [s for s in result.standings if s.rank is None]
    if failed:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip("\n".join(
            f"{ICONS[s.state]} `{escape(s.model)}` {s.state}: {escape((s.error or 'no reason recorded')[:500])}"
            for s in failed), SECTION_TEXT))))
    if result.flips is not None:
        after = next((s.model for s in result.standings if s.model != result.base), "")
        blocks.append(SectionBlock(text=MarkdownTextObject(text=clip(
            f"*Flips* on {result.flips.rows} rows: {len(result.flips.gained)} wrong with `{escape(result.base or '')}` "
            f"and right with `{escape(after)}`, {len(result.flips.lost)} right before and wrong after", SECTION_TEXT))))
        blocks += [SectionBlock(text=MarkdownTextObject(text=_example(d.index, d.input, d.reference, d.predictions)))
                   for d in result.flip_examples]
    elif result.disagreements:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=(
            f"*Where they disagree*: {result.disagreement_count} of {result.rows} rows"
            + (f", the first {len(result.disagreements)}" if result.disagreement_count > len(result.disagreements)
               else "") + ":"))))
        blocks += [SectionBlock(text=MarkdownTextObject(text=_example(d.index, d.input, d.reference, d.predictions)))
                   for d in result.disagreements]
    actions = [ButtonElement(text="Re-run", action_id=ActionId.COMPARE_RERUN, value=record.id)]
    if best is not None:
        actions = [ButtonElement(text="Fine-tune the best", action_id=ActionId.COMPARE_FINETUNE_BEST,
                                 value=best.model, style="primary"),
                   ButtonElement(text="Deploy the best", action_id=ActionId.COMPARE_DEPLOY_BEST, value=best.model),
                   *actions]
    blocks.append(ActionsBlock(elements=actions))
    blocks.append(TableBlock(rows=[[_cell(c) for c in row] for row in rows],
                             column_settings=[{"align": "right"}] + [{"is_wrapped": True}]
                             + [{"align": "right"}] * (len(rows[0]) - 2)))
    text = f"Comparison {record.id} ranked by {by}:\n```\n{_plain(rows)}\n```"
    return ChatMessage(text=clip(text, 40000), blocks=[b.to_dict() for b in blocks])


def thread_reply(record: JobRecord, event: JobEvent) -> ChatMessage | None:
    """The members' own progress shows on the status message; the thread gets the outcome."""
    if event == JobEvent.COMPLETED:
        return result_reply(record)
    if event == JobEvent.FAILED:
        text = f":x: `{record.id}` failed: {escape(record.error or '')}"
    elif event == JobEvent.CANCELED:
        text = f"`{record.id}` was canceled" + (f" ({escape(record.message)})." if record.message else ".")
    else:
        return None
    return ChatMessage(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text, SECTION_TEXT))).to_dict()])


def attachments(record: JobRecord, event: JobEvent) -> list[FileAttachment]:
    if event != JobEvent.COMPLETED or "comparison" not in record.result:
        return []
    from bot.plots import comparison_png

    result = ComparisonResult.model_validate(record.result["comparison"])
    bars = [(s.model, s.primary, tuple(s.interval) if s.interval else None)
            for s in result.standings if s.rank is not None]
    title = f"{result.primary} on {result.dataset_name} ({result.rows} rows)"
    return [FileAttachment(filename=f"{record.id}-{result.primary}.png", title=title,
                           content=comparison_png(bars, result.primary, title))]


def leaderboard_message(board: Leaderboard) -> dict[str, Any]:
    mapping = ", ".join(f"{k}={v}" for k, v in board.mapping.items())
    rows = [["#", "model", board.primary, "job", "finished"]]
    rows += [[str(i), e.model[:MODEL_CELL], f"{e.metrics[board.primary]:.4f}", e.job,
              e.finished_at.strftime("%Y-%m-%d %H:%M")] for i, e in enumerate(board.entries[:BOARD_ROWS], start=1)]
    title = (f"*Leaderboard* · {board.task} on `{escape(board.dataset_name)}` (dataset `{board.dataset}`, "
             f"mapping {escape(mapping)}) · {len(board.entries)} results by {board.primary}")
    blocks: list[Any] = [SectionBlock(text=MarkdownTextObject(text=clip(title, SECTION_TEXT)))]
    if len(board.entries) > BOARD_ROWS:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(
            text=f"and {len(board.entries) - BOARD_ROWS} more results below these")]))
    blocks.append(TableBlock(rows=[[_cell(c) for c in row] for row in rows]))
    return {"text": clip(f"Leaderboard {board.task} on {board.dataset_name}:\n```\n{_plain(rows)}\n```", 40000),
            "blocks": [b.to_dict() for b in blocks]}


class CompareRenderer(SlackJobRenderer):
    """Every job as `SlackJobRenderer` draws it, and comparisons (one record over several
    evaluations) as this module does."""

    def status_message(self, record: JobRecord) -> ChatMessage:
        return status_message(record) if record.kind == "compare" else super().status_message(record)

    def thread_reply(self, record: JobRecord, event: JobEvent) -> ChatMessage | None:
        return thread_reply(record, event) if record.kind == "compare" else super().thread_reply(record, event)

    def attachments(self, record: JobRecord, event: JobEvent) -> list[FileAttachment]:
        return attachments(record, event) if record.kind == "compare" else super().attachments(record, event)

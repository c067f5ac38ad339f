"""How a comparison looks in Teams: one card with a line per model, kept current, and the ranked
reply under it (table, chart, where the models disagree, what to do next); and the leaderboard.

Pure functions of the comparison's record (`workers.compare` ranks and stores everything; this only
draws it). Teams counts a message's size without its base64 images, so the chart rides on the card
as the loss curve does; the table keeps to the columns a dialog-wide card can show, and the
disagreements are cut until the card fits `MESSAGE_BYTES`.
"""

from __future__ import annotations

import base64

from bot.teams.ids import Input, Verb
from bot.teams.limits import CHOICES, MESSAGE_BYTES, clip, message_size
from bot.teams.views.cards import Element, card, execute, facts, heading, open_dialog, text
from bot.teams.views.jobs import STATE_COLORS, STATE_ICONS, elapsed
from platforms.comparison import Disagreement
from workers.compare import ComparisonResult, Leaderboard, Member, Standing
from workers.ledger import JobRecord

MODEL_CHARS = 60
METRIC_CHARS = 40  # a metric's name in a header cell
EXTRA_METRICS = 2  # metrics shown beside the primary one; the rest are in the CLI's --json
REASON_CHARS = 300
EXAMPLE_CHARS = 200
BOARD_ROWS = 20  # a table row costs ~1.3 KB of the card: 20 keep a board inside 40 KB


def _model(name: str) -> str:
    return clip(name, MODEL_CHARS)


def member_line(member: Member) -> str:
    line = f"{STATE_ICONS[member.state]} **{_model(member.model)}** — {member.state}"
    if member.fraction is not None and not member.state.final:
        line += f" · {member.fraction:.0%}"
    if member.error:
        line += f": {clip(member.error, REASON_CHARS)}"
    return line


def status_card(record: JobRecord, requester_name: str | None = None) -> Element:
    """The comparison's one card: a line per model as its evaluation moves, the models left out and why."""
    count = len(record.spec.get("models", []))
    head = heading(f"{STATE_ICONS[record.state]} Comparison {record.id} of {count} models — {record.state}")
    if record.state in STATE_COLORS:
        head["color"] = STATE_COLORS[record.state]
    body: list[Element] = [head, text(f"{record.task} on {clip(record.spec.get('test', {}).get('name', ''), 200)}",
                                      isSubtle=True, spacing="None")]
    body += [text(member_line(Member.model_validate(m)), spacing="Small") for m in record.result.get("members", [])]
    left_out = record.result.get("left_out", {})
    if left_out:
        body.append(text("Left out: " + "; ".join(f"{_model(m)} ({clip(why, REASON_CHARS)})"
                                                  for m, why in left_out.items()), size="Small"))
    if record.output_model:
        body.append(text(f"Best: **{_model(record.output_model)}** — ranking in the reply"))
    body.append(facts([("Asked by", requester_name or record.requester), ("Elapsed", elapsed(record.elapsed_seconds)),
                       ("Trace", record.trace_id)]))
    actions = [] if record.state.final else [execute("Cancel", Verb.CANCEL_JOB, {"job": record.id}, style="destructive")]
    return card(body, actions)


def _interval(standing: Standing) -> str:
    return f"{standing.interval[0]:.3f}–{standing.interval[1]:.3f}" if standing.interval else "—"


def metric_columns(result: ComparisonResult, metrics: list[str], by: str) -> list[str]:
    """The sort metric first, then the primary, then as many others as fit."""
    first = list(dict.fromkeys([by, result.primary]))
    return (first + [n for n in metrics if n not in first])[:1 + EXTRA_METRICS]


def ranked_table(result: ComparisonResult, metrics: list[str], by: str) -> Element:
    """The standings ranked by `by` (the primary metric as stored, or re-sorted), failed models last."""
    names = metric_columns(result, metrics, by)
    header = ["#", "model", *(clip(n, METRIC_CHARS) for n in names), "95% CI", "time"]
    rows = [header]
    for position, s in enumerate(result.ordered(by), start=1):
        if s.rank is None:
            rows.append(["—", _model(s.model), s.state.value, *(["—"] * (len(names) - 1)), "—", elapsed(s.seconds)])
        else:
            rows.append([str(position), _model(s.model), *(f"{s.metrics[n]:.4f}" if n in s.metrics else "—" for n in names),
                         _interval(s), elapsed(s.seconds)])

    def row(cells: list[str], bold: bool) -> Element:
        return {"type": "TableRow", "cells": [{"type": "TableCell", "items": [
            text(cell, weight="Bolder", size="Small") if bold else text(cell, size="Small")]} for cell in cells]}

    return {"type": "Table", "firstRowAsHeader": True, "gridStyle": "accent",
            "columns": [{"width": 1}, {"width": 4}] + [{"width": 2}] * (len(header) - 2),
            "rows": [row(r, i == 0) for i, r in enumerate(rows)]}


def _examples(result: ComparisonResult) -> tuple[str, list[Disagreement]]:
    if result.flips is not None:
        after = next((s.model for s in result.standings if s.model != result.base), "")
        return (f"**Flips** on {result.flips.rows} rows: {len(result.flips.gained)} wrong with {_model(result.base or '')} "
                f"and right with {_model(after)}, {len(result.flips.lost)} right before and wrong after",
                result.flip_examples)
    if result.disagreements:
        return (f"**Where they disagree**: {result.disagreement_count} of {result.rows} rows", result.disagreements)
    return "", []


def _example(d: Disagreement) -> Element:
    said = " · ".join(f"{_model(m)} → {clip(p, EXAMPLE_CHARS // 2)}" for m, p in d.predictions.items())
    return text(f"Row {d.index + 1}: _{clip(d.input, EXAMPLE_CHARS)}_ — reference {clip(d.reference, EXAMPLE_CHARS // 2)}"
                f"\n\n{said}", size="Small")


def sort_input(metrics: list[str], by: str) -> Element:
    return {"type": "Input.ChoiceSet", "id": Input.SORT_BY, "label": "Sort by", "value": by,
            "choices": [{"title": clip(name, METRIC_CHARS), "value": name} for name in metrics[:CHOICES]]}


def result_card(record: JobRecord, chart_png: bytes | None = None, by: str | None = None) -> Element:
    """The ranked reply: table (sortable by any metric), failures with their reasons, the chart,
    disagreements (as many as fit), and Sort · Fine-tune the best · Deploy the best · Re-run."""
    result = ComparisonResult.model_validate(record.result["comparison"])
    metrics = result.metric_names()
    by = by if by in metrics else result.primary
    best = result.best
    summary = (f"Ranked by {clip(by, METRIC_CHARS)} on {clip(result.dataset_name, 200)} · dataset {result.dataset} · "
               f"95% intervals by bootstrap over {result.rows} test rows")
    body: list[Element] = [heading(f"Comparison {record.id}"), text(summary, isSubtle=True, size="Small")]
    if best is not None:
        body.append(text(f"Best: **{_model(best.model)}** — {result.primary} {best.primary:.4f} ({_interval(best)})"))
    body.append(ranked_table(result, metrics, by))
    body += [text(f"No interval for {_model(s.model)}: {clip(s.rows_unavailable, REASON_CHARS)}", isSubtle=True,
                  size="Small") for s in result.without_interval()]
    body += [text(f"{STATE_ICONS[s.state]} {_model(s.model)} {s.state}: {clip(s.error or 'no reason recorded', REASON_CHARS)}",
                  color="Attention", size="Small") for s in result.standings if s.rank is None]
    if chart_png:
        body.append({"type": "Image", "altText": f"{result.primary} per model",
                     "url": "data:image/png;base64," + base64.b64encode(chart_png).decode()})
    actions = [execute("Re-run", Verb.COMPARE_RERUN, {"comparison": record.id})]
    if len(metrics) > 1:
        body.append(sort_input(metrics, by))
        actions.insert(0, execute("Sort", Verb.COMPARE_SORT, {"comparison": record.id}))
    if best is not None:
        actions = [open_dialog("Fine-tune the best", {"kind": "finetune", "model": best.model}),
                   open_dialog("Deploy the best", {"kind": "deploy", "model": best.model}), *actions]
    title, examples = _examples(result)
    shown = len(examples)
    while True:
        extra = [text(title + (f", the first {shown}:" if shown < len(examples) or result.disagreement_count > shown
                               else ":"))] + [_example(d) for d in examples[:shown]] if title else []
        content = card(body + extra, actions)
        if shown == 0 or message_size(content) <= MESSAGE_BYTES:
            return content
        shown -= 1


def chart(record: JobRecord) -> bytes | None:
    """The primary metric per ranked model with its interval, as the Slack reply attaches it."""
    if "comparison" not in record.result:
        return None
    from bot.plots import comparison_png

    result = ComparisonResult.model_validate(record.result["comparison"])
    bars = [(s.model, s.primary, tuple(s.interval) if s.interval else None)
            for s in result.standings if s.rank is not None]
    if not bars:
        return None
    return comparison_png(bars, result.primary, f"{result.primary} on {result.dataset_name} ({result.rows} rows)")


def leaderboard_card(board: Leaderboard) -> Element:
    mapping = ", ".join(f"{k}={v}" for k, v in board.mapping.items())
    rows = [{"type": "TableRow", "cells": [{"type": "TableCell", "items": [text(c, weight="Bolder", size="Small")]}
                                           for c in ("#", "model", board.primary, "job", "finished")]}]
    rows += [{"type": "TableRow", "cells": [{"type": "TableCell", "items": [text(c, size="Small")]} for c in (
        str(i), _model(e.model), f"{e.metrics[board.primary]:.4f}", e.job, e.finished_at.strftime("%Y-%m-%d %H:%M"))]}
        for i, e in enumerate(board.entries[:BOARD_ROWS], start=1)]
    body: list[Element] = [heading(f"Leaderboard · {board.task} on {clip(board.dataset_name, 200)}"),
                           text(f"dataset {board.dataset}, mapping {clip(mapping, 300)} · {len(board.entries)} "
                                f"results by {board.primary}", isSubtle=True, size="Small"),
                           {"type": "Table", "firstRowAsHeader": True, "rows": rows,
                            "columns": [{"width": 1}, {"width": 4}, {"width": 2}, {"width": 3}, {"width": 3}]}]
    if len(board.entries) > BOARD_ROWS:
        body.append(text(f"and {len(board.entries) - BOARD_ROWS} more results below these", isSubtle=True))
    return card(body)

"""The console adapter: how handler results look in a terminal (and as `--json`)."""

from __future__ import annotations

import json
import sys
from typing import Any

from handlers.costs import CostReport
from handlers.tryout import TryResult
from platforms.base import DatasetInfo, EndpointInfo, ModelCard
from platforms.datasets import Preview
from workers.compare import ComparisonResult, Leaderboard, Member
from workers.ledger import JobRecord


def emit_json(value: Any) -> None:
    print(json.dumps(value, indent=None, default=str), flush=True)


def model_table(cards: list[ModelCard]) -> str:
    if not cards:
        return "The catalog is empty."
    rows = [("NAME", "VERSION", "TASKS", "LICENSE")]
    rows += [(c.name, c.version, ",".join(c.tasks), c.license or "-") for c in cards]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def model_card(card: ModelCard) -> str:
    lines = [
        f"{card.name}:{card.version}",
        f"  tasks:    {', '.join(card.tasks)}",
        f"  license:  {card.license or 'unknown'}",
        f"  source:   {card.source or '-'}",
    ]
    if card.base_model:
        lines.append(f"  base:     {card.base_model}")
    if card.training_data:
        lines.append(f"  data:     {card.training_data}")
    if card.metrics:
        lines.append("  metrics:  " + ", ".join(f"{k}={v:.4f}" for k, v in card.metrics.items()))
    lines.append(f"  about:    {card.description}")
    return "\n".join(lines)


def metrics_table(columns: dict[str, dict[str, float]]) -> str:
    """Metrics side by side, one column per run (e.g. before / after)."""
    names = list(dict.fromkeys(name for metrics in columns.values() for name in metrics))
    width = max([len(n) for n in names] + [6])
    header = "metric".ljust(width) + "".join(f"  {title:>10}" for title in columns)
    rows = [header]
    for name in names:
        cells = "".join(
            f"  {columns[title][name]:>10.4f}" if name in columns[title] else f"  {'-':>10}" for title in columns
        )
        rows.append(name.ljust(width) + cells)
    return "\n".join(rows)


def job_line(record: JobRecord) -> str:
    progress = ""
    if record.progress and not record.state.final:
        progress = f" {record.progress.fraction:.0%} step {record.progress.step}/{record.progress.total}"
    return f"{record.id}  {record.kind:<9} {record.state:<9} {record.model}{progress}"


def job_details(record: JobRecord) -> str:
    lines = [job_line(record)]
    if record.output_model:
        lines.append(f"  output model: {record.output_model}")
    if record.error:
        lines.append(f"  error: {record.error}")
    if record.message:
        lines.append(f"  note: {record.message}")
    for use in record.data:
        lines.append(f"  {use.role} data: {use.dataset or use.name}, {use.rows} rows"
                     + (f", {use.skipped} bad rows skipped ({'; '.join(use.skipped_rows)})" if use.skipped else ""))
    if record.estimate is not None:
        lines.append(f"  estimate: {record.estimate.summary()} ({record.estimate.basis})")
    if record.actual_seconds is not None and record.kind != "deploy":
        error = f", {record.estimate_error:+.0%} off the estimate" if record.estimate_error is not None else ""
        lines.append(f"  took: {record.actual_seconds:.0f} s, ${record.actual_usd or 0:,.2f}{error}")
    if record.metrics:
        lines.append(metrics_table({"value": record.metrics}))
    return "\n".join(lines)


def error(message: str) -> None:
    print(f"fmbot: {message}", file=sys.stderr, flush=True)


def endpoint_json(info: EndpointInfo, *, with_key: bool = False) -> dict[str, Any]:
    """The endpoint as JSON; the key only when asked for (it is shown to its owner only), null once
    it was picked up (`rotate-key` gives a new one)."""
    data = info.model_dump(mode="json", exclude={"key"})
    if with_key:
        data["key"] = info.key.get_secret_value() if info.key is not None else None
    return data


def endpoint_table(infos: list[EndpointInfo]) -> str:
    if not infos:
        return "No endpoints. Deploy one with: fmbot deploy MODEL --endpoint NAME"
    rows = [("NAME", "STATE", "MODEL", "TASK", "INSTANCES", "URL")]
    rows += [(e.name, e.state, e.model, e.task, str(e.instances), e.url or "-") for e in infos]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [f"  {e.name}: {e.message}" for e in infos if e.message]
    return "\n".join(lines)


def endpoint_details(info: EndpointInfo, *, with_key: bool = False) -> str:
    lines = [f"endpoint {info.name}: {info.state}", f"  model:       {info.model} ({info.task})",
             f"  scoring URL: {info.url or '-'}", f"  instances:   {info.instances}"]
    if with_key and info.key is not None:
        key = info.key.get_secret_value()
        lines.append(f"  key:         {key}")
        lines.append(f"  try it:      curl -s {info.url} -H 'Authorization: Bearer {key}' "
                     """-H 'Content-Type: application/json' -d '{"input_data": ["hello"]}'""")
    elif with_key:
        lines.append(f"  key:         shown once already; get a new one with: fmbot rotate-key {info.name}")
    if info.message:
        lines.append(f"  note:        {info.message}")
    return "\n".join(lines)


def try_result(result: TryResult) -> str:
    lines = [f"{result.model} ({result.task}), {result.seconds:.2f}s" + (" on the sample input" if result.sample_input else "")]
    for given, output in zip(result.inputs, result.outputs, strict=True):
        lines.append("  input:  " + json.dumps(given, ensure_ascii=False))
        lines.append("  output: " + json.dumps(output, ensure_ascii=False))
    return "\n".join(lines)


def dataset_table(infos: list[DatasetInfo]) -> str:
    if not infos:
        return "No registered datasets. Register one with: fmbot data register NAME FILE"
    rows = [("NAME", "VERSION", "ROWS", "COLUMNS", "SIZE", "BY", "FILE")]
    rows += [(d.name, d.version, str(d.rows if d.rows is not None else "-"), str(len(d.columns) or "-"),
              _size(d.size_bytes), d.registered_by or "-", d.file_name) for d in infos]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / (1024 * 1024):.1f} MB"


def dataset_details(info: DatasetInfo) -> str:
    lines = [info.ref, f"  file:     {info.file_name} ({_size(info.size_bytes)})",
             f"  rows:     {info.rows if info.rows is not None else '-'}",
             f"  columns:  {', '.join(info.columns) or '-'}",
             f"  by:       {info.registered_by or '-'}" + (f" on {info.created_at:%Y-%m-%d %H:%M} UTC" if info.created_at else "")]
    if info.sha256:
        lines.append(f"  sha256:   {info.sha256}")
    if info.description:
        lines.append(f"  about:    {info.description}")
    lines.append(f"  use it:   --train data:{info.ref}")
    return "\n".join(lines)


def preview(result: Preview) -> str:
    """The mapped file as the model sees it: first rows, distribution, warnings."""
    lines = [f"{result.file}: {result.rows} rows for {result.task}"
             + (f", {result.skipped} bad rows skipped" if result.skipped else "")]
    lines += [f"  skipped {row.text()}" for row in result.bad_rows]
    for number, row in enumerate(result.first, start=1):
        lines.append(f"  row {number} input:  {row.input}")
        lines.append(f"  row {number} target: {row.target}")
    if result.distribution:
        shown = list(result.distribution.items())
        text = ", ".join(f"{name} {count}" for name, count in shown[:20])
        lines.append(f"  {result.distribution_of}: {text}" + (f" and {len(shown) - 20} more" if len(shown) > 20 else ""))
    lines += [f"  warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def cost_report(report: CostReport) -> str:
    from workers.costs import money

    lines = [f"Costs in {report.month} (estimated, then actual once each job or endpoint ends); yours: {money(report.yours)}"]
    lines += [f"  {b.scope} {b.who} budget: {money(b.used)} of {money(b.budget)}" for b in report.budgets]
    lines += ["By user:"] + [f"  {who}  {money(usd)}" for who, usd in report.users.items()]
    lines += ["By channel:"] + [f"  {who}  {money(usd)}" for who, usd in report.channels.items()]
    lines.append(f"Prices: {report.price_source}, read {report.prices_read}")
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _parameters(parameters: int | None) -> str:
    if not parameters:
        return "-"
    return f"{parameters / 1e6:.1f}M" if parameters >= 1e5 else f"{parameters / 1e3:.0f}k"


def comparison_table(result: ComparisonResult) -> str:
    """Ranked: rank, model, the primary metric with its 95% interval, every other metric, time, size;
    failed models last with their reason."""
    names = [result.primary] + sorted({n for s in result.standings for n in s.metrics} - {result.primary})
    rows = [("#", "MODEL", *names, "95% CI", "TIME", "SIZE")]
    for s in result.standings:
        if s.rank is None:
            rows.append(("-", s.model, *([""] * len(names)), f"{s.state}: {s.error or ''}"[:80], "", ""))
            continue
        interval = f"{s.interval[0]:.3f}-{s.interval[1]:.3f}" if s.interval else "-"
        rows.append((str(s.rank), s.model, *(f"{s.metrics[n]:.4f}" if n in s.metrics else "-" for n in names),
                     interval, f"{s.seconds:.0f}s", _parameters(s.parameters)))
    return _table(rows)


def comparison(record: JobRecord) -> str:
    lines = [job_line(record)]
    if record.error:
        lines.append(f"  error: {record.error}")
    for model, why in record.result.get("left_out", {}).items():
        lines.append(f"  left out {model}: {why}")
    if "comparison" in record.result:
        result = ComparisonResult.model_validate(record.result["comparison"])
        lines.append(f"on {result.dataset_name} ({result.rows} rows kept for intervals), ranked by {result.primary}:")
        lines.append(comparison_table(result))
        lines += [f"  no interval for {s.model}: {s.rows_unavailable}" for s in result.without_interval()]
        if result.flips is not None:
            lines.append(f"flips vs {result.base} on {result.flips.rows} rows: {len(result.flips.gained)} right only "
                         f"after, {len(result.flips.lost)} right only before")
        for d in result.disagreements:
            said = "; ".join(f"{m}: {p}" for m, p in d.predictions.items())
            lines.append(f"  row {d.index + 1}: {d.input[:80]!r} reference {d.reference[:40]!r} — {said[:200]}")
    else:
        for member in record.result.get("members", []):
            m = Member.model_validate(member)
            lines.append(f"  {m.job}  {m.state:<9} {m.model}" + (f"  {m.error}" if m.error else ""))
    return "\n".join(lines)


def leaderboard(board: Leaderboard) -> str:
    mapping = ",".join(f"{k}={v}" for k, v in board.mapping.items())
    rows = [("#", "MODEL", board.primary.upper(), "JOB", "FINISHED")]
    rows += [(str(i), e.model, f"{e.metrics[board.primary]:.4f}", e.job, e.finished_at.strftime("%Y-%m-%d %H:%M"))
             for i, e in enumerate(board.entries, start=1)]
    return f"{board.task} on {board.dataset_name} ({board.dataset}, {mapping})\n" + _table(rows)

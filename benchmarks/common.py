"""What every benchmark shares: a result row with its ratio and target, statistics, and the CLI.

Each benchmark module has `run(quick) -> list[Result]` and calls `main(name, run)`; `--json PATH`
writes the rows for `run_all`, which runs every benchmark in its own process so that one's imports,
threads and memory never colour another's numbers.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class Result(BaseModel):
    """One measured figure of fmbot next to the same figure of its baseline.

    `target` bounds the ratio fmbot/baseline: at most `target` when lower is better (latency), at
    least `target` when higher is better (throughput); None for figures shown for context only.
    `limit` is an absolute bound on fmbot's own figure (at most), for targets such as "0 slow acks".
    """

    benchmark: str
    metric: str
    fmbot: float
    baseline: float | None = None
    baseline_name: str = ""
    unit: str = ""
    higher_is_better: bool = False
    target: float | None = None
    limit: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None:
            return None
        if self.baseline == 0:
            return 1.0 if self.fmbot == 0 else math.inf
        return self.fmbot / self.baseline

    @property
    def met(self) -> bool | None:
        if self.limit is not None:
            return self.fmbot <= self.limit
        ratio = self.ratio
        if self.target is None or ratio is None:
            return None
        return ratio >= self.target if self.higher_is_better else ratio <= self.target

    def target_text(self) -> str:
        if self.limit is not None:
            return f"≤ {self.limit:g} {self.unit}".strip()
        if self.target is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g}×"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isinf(value) or math.isnan(value):
        return str(value)
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(results: Sequence[Result]) -> str:
    """A Markdown table, readable in a terminal and in results.md alike."""
    lines = ["| benchmark | metric | fmbot | baseline | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        unit = f" {r.unit}" if r.unit else ""
        baseline = f"{fmt(r.baseline)}{unit} ({r.baseline_name})" if r.baseline is not None else "—"
        ratio = f"{fmt(r.ratio)}×" if r.ratio is not None else "—"
        met = {True: "yes", False: "**no**", None: ""}[r.met]
        metric = f"{r.metric} — {r.note}" if r.note else r.metric
        lines.append(f"| {r.benchmark} | {metric} | {fmt(r.fmbot)}{unit} | {baseline} | {ratio} | {r.target_text()} | {met} |")
    return "\n".join(lines)


def main(name: str, run: Callable[[bool], list[Result]], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--json", type=Path, help="also write the rows here (for run_all)")
    args = parser.parse_args(argv)
    results = run(args.quick)
    print(table(results), flush=True)
    if args.json:
        args.json.write_text("[" + ",".join(r.model_dump_json() for r in results) + "]")
    return 0


def log(message: str) -> None:
    """Progress on stderr, so the table on stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def slack_settings(redis_url: str, api_url: str, root: Path, *, seed_models: bool = False):
    """Settings of a bot that talks to the Slack stand-in and a private Redis, as the tests build them."""
    from bot.settings import Settings
    from tests.slack_standin import BOT_TOKEN, SIGNING_SECRET

    return Settings(
        _env_file=None, redis_url=redis_url, fmbot_models_dir=root / "models", fmbot_data_dir=root / "data",
        fmbot_seed_models=seed_models, fmbot_progress_interval=0.0, fmbot_job_retries=0,
        slack_bot_token=BOT_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=api_url,
        slack_file_hosts="127.0.0.1",
    )

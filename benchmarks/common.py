"""What every benchmark shares: a result row with its ratio and target, statistics, and the CLI.

Each benchmark module has `run(quick) -> list[Result]` and calls `main(name, run)`; `--json PATH`
writes the rows for `run_all`, which runs every benchmark in its own process so that one's imports,
threads and memory never colour another's numbers.

The method (issue 20): fmbot and its baseline run in alternating rounds (`alternate`), at least
`ROUNDS` of them in a full run; a row built by `compared` holds the median of each side and the
ratio of every round, and its ratio is the median of those, shown with their min–max. A ratio from
one round on a shared machine is not a result: the two-core machine's neighbours move single
rounds by 2× and more, and only the spread says whether a target was met by luck.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROUNDS = 5  # the fewest alternating rounds behind a figure of a full run
QUICK_ROUNDS = 1  # --quick shows that a benchmark runs, not what it measures
T = TypeVar("T")


def rounds(quick: bool, full: int = ROUNDS) -> int:
    """How many alternating rounds to run: `full` (never fewer than ROUNDS) or one when quick."""
    return QUICK_ROUNDS if quick else max(full, ROUNDS)


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
    ratios: list[float] = []  # fmbot/baseline of each round; the ratio is their median

    @property
    def ratio(self) -> float | None:
        if self.ratios:
            return median(self.ratios)
        if self.baseline is None:
            return None
        return ratio_of(self.fmbot, self.baseline)

    def spread_text(self) -> str:
        if len(self.ratios) < 2:
            return ""
        return f"{fmt(min(self.ratios))}–{fmt(max(self.ratios))}, {len(self.ratios)} rounds"

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


def ratio_of(fmbot: float, baseline: float) -> float:
    if baseline == 0:
        return 1.0 if fmbot == 0 else math.inf
    return fmbot / baseline


def alternate(count: int, sides: Mapping[str, Callable[[], T]]) -> dict[str, list[T]]:
    """Run every side once per round, `count` rounds, rotating which goes first, so that a neighbour's
    burst of load or a warming cache falls on each side alike; returns each side's results by round."""
    names = list(sides)
    results: dict[str, list[T]] = {name: [] for name in names}
    for index in range(count):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(sides[name]())
    return results


def compared(benchmark: str, metric: str, fmbot: Sequence[float], baseline: Sequence[float], **fields) -> Result:
    """A row from per-round figures of both sides (same length, same rounds): each side's median and
    the ratio of every round, whose median is the row's ratio and decides whether the target is met."""
    if len(fmbot) != len(baseline) or not fmbot:
        raise ValueError(f"{benchmark} {metric}: {len(fmbot)} fmbot rounds against {len(baseline)} baseline rounds")
    return Result(benchmark=benchmark, metric=metric, fmbot=median(fmbot), baseline=median(baseline),
                  ratios=[ratio_of(f, b) for f, b in zip(fmbot, baseline, strict=True)], **fields)


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
    lines = ["| benchmark | metric | fmbot | baseline | ratio (min–max over rounds) | target | met |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        unit = f" {r.unit}" if r.unit else ""
        baseline = f"{fmt(r.baseline)}{unit} ({r.baseline_name})" if r.baseline is not None else "—"
        ratio = f"{fmt(r.ratio)}×" if r.ratio is not None else "—"
        if r.spread_text():
            ratio += f" ({r.spread_text()})"
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

"""Every benchmark runs end to end at tiny sizes and prints its rows with ratios (no timed assertions)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run_all import BENCHMARKS
from tests.helpers import ROOT

pytestmark = pytest.mark.bench
SLOW = {"finetune_throughput", "endpoint_throughput", "try_latency", "parallel_evaluations"}


def run_quick(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in BENCHMARKS])
def test_benchmark_runs_quick_and_prints_ratios(name: str, tmp_path: Path):
    out = tmp_path / "rows.json"
    done = run_quick([f"benchmarks.{name}", "--quick", "--json", str(out)], timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert rows and all(row["benchmark"] == name for row in rows)
    for row in rows:
        assert row["fmbot"] >= 0 and row["baseline"] is not None and row["baseline"] >= 0, row
    assert any(row["target"] is not None or row["limit"] is not None for row in rows), "no row carries a target"
    printed = [line for line in done.stdout.splitlines() if line.startswith(f"| {name} |")]
    assert len(printed) == len(rows)
    ratios = [line.split("|")[5].strip() for line in printed]
    assert all(r.endswith("×") and math.isfinite(float(r.rstrip("×").replace(",", ""))) for r in ratios), ratios


def test_run_all_writes_a_report_with_the_machine(tmp_path: Path):
    report = tmp_path / "results.md"
    done = run_quick(["benchmarks.run_all", "--quick", "--only", "notify_latency", "--out", str(report)], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    for needed in ("**cpu**", "**cores**", "**torch / device**", "**date**", "| notify_latency |", "direct chat.postMessage"):
        assert needed in text

"""Every benchmark runs end to end at tiny sizes and prints its rows with ratios (no timed assertions).

One `run_all --quick` runs them all, two at a time (quick figures mean nothing, so they may share the
cores), which keeps `make bench-quick` within its two minutes; the report it writes must carry the
machine, each benchmark's seconds and the load average around it.
"""

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


def test_every_benchmark_runs_quick_and_reports_its_ratios(tmp_path: Path):
    report, rows_file = tmp_path / "results.md", tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--quick", "--jobs", "2", "--out", str(report),
                           "--rows", str(rows_file)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    rows = json.loads(rows_file.read_text())
    assert set(rows) == set(BENCHMARKS)
    text = report.read_text()
    for name, found in rows.items():
        assert found and all(row["benchmark"] == name for row in found), name
        for row in found:
            assert row["fmbot"] >= 0 and row["baseline"] is not None and row["baseline"] >= 0, row
        assert any(row["target"] is not None or row["limit"] is not None for row in found), f"{name}: no target"
        printed = [line for line in text.splitlines() if line.startswith(f"| {name} |")]
        table_rows, timing_row = printed[:-1], printed[-1]
        assert len(table_rows) == len(found), name
        ratios = [line.split("|")[5].strip().split(" ")[0] for line in table_rows]
        assert all(r.endswith("×") and math.isfinite(float(r.rstrip("×").replace(",", ""))) for r in ratios), ratios
        assert len(timing_row.split("|")) == 7, timing_row
    for needed in ("**cpu**", "**cores**", "**torch / device**", "**date**", "load average before",
                   "direct chat.postMessage"):
        assert needed in text

"""`make bench` runs and reports every figure it promises (how fast is for the benchmark
itself; this test asks only that the command a README names works)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(180)


def test_the_benchmark_runs_small_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.e2e", "--store", "sqlite", "--jobs", "300",
         "--samples", "5", "--single", "100", "--workers", "1", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    sqlite = json.loads(out.read_text())["results"]["sqlite"]
    figures = [
        sqlite["bulk_enqueue_jobs_per_s"],
        sqlite["process_jobs_per_s"],
        sqlite["submit_to_start"]["p50_ms"],
        sqlite["submit_to_start"]["p99_ms"],
        sqlite["single_submit"]["jobs_per_s"],
        sqlite["single_submit"]["p99_ms"],
        sqlite["cpu_ms_per_job"]["server"],
        sqlite["cpu_ms_per_job"]["workers"],
        sqlite["rss_mb"]["server"],
        sqlite["rss_mb"]["workers"],
    ]
    assert all(value > 0 for value in figures), sqlite
    assert "process, first start to last finish" in run.stdout

"""Benchmark scripts keep working (tiny settings; the real figures come from running them in full)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_cka_benchmark_runs_and_agrees_with_the_per_pair_reference(tmp_path: Path) -> None:
    out = tmp_path / "cka.json"
    command = [sys.executable, str(REPO / "benchmarks" / "cka_benchmark.py"), "--images", "32", "--batch", "16"]
    subprocess.run([*command, "--size", "32", "--repeats", "1", "--out", str(out)], check=True, capture_output=True)
    results = json.loads(out.read_text())
    assert results["blocks"] == [21, 16] and results["images"] == 32
    assert results["max_abs_diff_streaming_vs_pairwise"] < 1e-9
    assert {"forward", "streaming", "accumulate_only", "pairwise_only"} == set(results["median_seconds"])


def test_latency_prediction_benchmark_reports_its_errors(
    profiled: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """The benchmark runs on the tiny project's profiled table and writes predicted vs measured per rung."""
    _, project, target, cache = profiled
    out = tmp_path / "latency.json"
    command = [sys.executable, str(REPO / "benchmarks" / "latency_prediction.py"), "--target", str(target)]
    command += ["--project", str(project), "--runs", "20", "--out", str(out)]
    env = {**os.environ, "RESTNETC_CACHE": str(cache)}
    subprocess.run(command, check=True, capture_output=True, env=env)
    results = json.loads(out.read_text())
    rungs = results["rungs"]
    assert len(rungs) == 3 and sum(r["id"].startswith("parent-") for r in rungs) == 2
    assert all(r["predicted_ms"] > 0 and r["measured_ms"] > 0 and r["measured_memory_bytes"] > 0 for r in rungs)
    assert results["latency_median_abs_percent_error"] >= 0 and results["parts"] == 41

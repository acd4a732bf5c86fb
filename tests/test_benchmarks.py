"""Benchmark scripts keep working (tiny settings; the real figures come from running them in full)."""

from __future__ import annotations

import json
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

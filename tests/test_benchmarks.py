"""Benchmark scripts keep working (tiny settings; the real figures come from running them in full)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from restnetc.config.loader import load_config
from restnetc.config.project import ProjectConfig
from restnetc.models import decompose
from restnetc.models.factory import build_model
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
    # Each error is the one of the figures written beside it, and the summary is their median.
    for r in rungs:
        expected = abs(r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] * 100
        rounding = 100 * 5e-5 * r["predicted_ms"] / r["measured_ms"] ** 2  # measured_ms is rounded to 4 decimals
        assert r["latency_error_percent"] == pytest.approx(expected, abs=0.006 + rounding), r
    median = statistics.median(r["latency_error_percent"] for r in rungs)
    assert results["latency_median_abs_percent_error"] == pytest.approx(median, abs=0.01)
    # Every part of both parents was timed: a stem, each block and a head per parent.
    config = load_config(project, ProjectConfig)
    models = [decompose(build_model(config.models[k], config.data.input_size)) for k in ("a", "b")]
    assert results["parts"] == sum(len(m.blocks) + 2 for m in models)


def test_scale_out_benchmark_times_the_cka_pass_on_every_arm(tmp_path: Path) -> None:
    """The CKA arms only (``--jobs 0``): the lowering arms take minutes, and tests/test_executors.py runs both
    executors on real jobs."""
    out = tmp_path / "scale_out.json"
    command = [sys.executable, str(REPO / "benchmarks" / "scale_out.py"), "--images", "32", "--size", "32"]
    subprocess.run([*command, "--batch", "8", "--repeats", "1", "--jobs", "0", "--out", str(out)], check=True)
    cka = json.loads(out.read_text())["cka"]
    assert [run[0]["ranks"] for run in cka["runs"].values()] == [1, 1, 2]
    assert all(arm["seconds"] > 0 and arm["wall"] > arm["seconds"] for arm in cka["median_seconds"].values())
    assert cka["all_reduce_bytes_per_rank"] == (21 + 16) ** 2 * 8 + 8

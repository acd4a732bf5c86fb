"""Parsing TFLite benchmark_model logs in every form devices produce, and refusing broken ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc.bench.benchmark_log import BenchmarkLogError, parse_benchmark_log, read_benchmark_log
from tests.conftest import REPO, CliResult

LOGS = REPO / "tests" / "fixtures" / "benchmark_logs"


def test_modern_log_with_percentiles_and_delegate() -> None:
    log = read_benchmark_log(LOGS / "modern.log")
    assert log.graph == "/data/local/tmp/restnetc/litert/stitch-09-05.tflite"
    assert log.threads == 4 and log.use_xnnpack is True
    assert log.init_session_ms == pytest.approx(41.512)
    assert (log.init_us, log.first_inference_us) == (41512, 19871)
    assert (log.warmup_avg_us, log.inference_avg_us) == (12193.6, 11880.3)
    assert log.inference is not None and log.inference.count == 84 and log.inference.std_us == 188
    assert (log.inference.p5_us, log.inference.median_us, log.inference.p95_us) == (11640, 11852, 12241)
    assert log.warmup is not None and log.warmup.count == 41
    assert log.inference_ms == pytest.approx(11.852)
    assert (log.memory_init_delta_mb, log.memory_overall_delta_mb, log.peak_memory_mb) == (9.85547, 13.4336, 17.2188)
    assert [(d.delegate, d.replaced_nodes, d.total_nodes, d.partitions) for d in log.delegates] == [
        ("TfLiteXNNPackDelegate", 187, 191, 3)
    ]


def test_info_prefix_and_scientific_notation() -> None:
    log = read_benchmark_log(LOGS / "info_prefix_scientific.log")
    assert log.threads == 2 and log.use_xnnpack is True
    assert log.first_inference_us == pytest.approx(2.95034e6) and log.inference_avg_us == pytest.approx(2.92841e6)
    assert log.inference is not None and log.inference.min_us == pytest.approx(2.88001e6)
    assert log.inference.median_us is None and log.inference_ms == pytest.approx(2928.41)
    assert log.warmup is not None and log.warmup.count == 1 and log.warmup.curr_us == 2950340
    assert log.peak_memory_mb == pytest.approx(29.1055)


def test_android_logcat_prefix() -> None:
    log = read_benchmark_log(LOGS / "logcat.log")
    assert log.graph == "/data/local/tmp/m.tflite" and log.threads == 4
    assert log.inference_avg_us == 5180.9 and log.inference is not None and log.inference.count == 193
    assert log.delegates[0].replaced_nodes == 58 and log.delegates[0].partitions == 1
    assert log.memory_overall_delta_mb == pytest.approx(10.3516)


def test_older_builds_peak_memory_line() -> None:
    log = read_benchmark_log(LOGS / "old_memory_lines.log")
    assert log.peak_memory_mb == 11.5 and log.memory_init_delta_mb == 4.125
    assert log.memory_overall_delta_mb is None and log.use_xnnpack is None and log.delegates == []


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("crashed_before_results.log", "stops before the timing results"),
        ("not_a_benchmark_log.txt", "no benchmark_model output found"),
    ],
)
def test_unusable_logs_are_rejected_with_the_file_and_why(name: str, reason: str) -> None:
    with pytest.raises(BenchmarkLogError, match=rf"{name}: not a complete benchmark_model log: .*{reason}"):
        read_benchmark_log(LOGS / name)


def test_empty_text_is_rejected() -> None:
    with pytest.raises(BenchmarkLogError, match=r"x\.log: not a complete"):
        parse_benchmark_log("", "x.log")


def test_bench_ingest_prints_json(cli: Callable[..., CliResult]) -> None:
    result = cli("bench", "ingest", str(LOGS / "modern.log"), str(LOGS / "logcat.log"), "--json")
    assert result.code == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert [p["inference_avg_us"] for p in parsed] == [11880.3, 5180.9]


def test_bench_ingest_names_a_bad_log(cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("bench", "ingest", str(LOGS / "modern.log"), str(LOGS / "crashed_before_results.log"))
    assert result.code == 1 and "crashed_before_results.log: not a complete" in result.stderr

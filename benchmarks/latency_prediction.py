"""Cost-table predictions vs end-to-end measurement on this machine, for every rung of a target's ladder.

Profiles the target's cost table (``restnetc profile``; cached), runs the search (cached) and lowers every
rung (both parents and each stitched variant) whole with the table's backend and numeric format. Then the
table's part programs and the whole rungs are timed side by side in one interleaved run (the table's
thread count), since this shared machine's speed drifts by tens of percent between runs minutes apart;
the table's times are replaced by that run's, and each rung is predicted from them. Memory: each rung's
peak is probed in a separate process and compared with the table's memory fit. Prints predicted vs
measured per rung and the median absolute percentage errors (also with the table's own, earlier times),
and writes them to ``benchmarks/results/latency_prediction.json``.

Usage: ``.venv/bin/python benchmarks/latency_prediction.py [--target targets/cortex-a53.yaml] [--project P]``
(``--runs N`` timed runs per model; ``--out FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from restnetc.backends import get_backend
from restnetc.budget.cost_table import CostTable, parts_dir
from restnetc.budget.measure import TimedEntry, measure_memory, time_entries
from restnetc.budget.profiling import WARMUP
from restnetc.bundle.budget_check import predicted_costs
from restnetc.bundle.ladder import Rung, ladder
from restnetc.cache import Cache, default_cache_dir
from restnetc.config import load_project, load_target
from restnetc.native_output import captured
from restnetc.pipeline.costs import profile_target
from restnetc.pipeline.search import run_search

RESULTS = Path(__file__).parent / "results" / "latency_prediction.json"


def _percent_error(predicted: float, measured: float) -> float:
    return abs(predicted - measured) / measured * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--project", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    target = load_target(args.target)
    project, _ = load_project(args.project)
    cache = Cache(default_cache_dir())
    search = run_search(project, target, cache)
    calibration = search.train.images[: target.runtime.calibration_images]
    example = calibration[:1]
    rungs = ladder(search)
    with tempfile.TemporaryDirectory() as tmp:
        stored = profile_target(project, target, cache, Path(tmp) / "table.json")
        backend = get_backend(stored.backend)
        paths: dict[str, Path] = {}
        for rung in rungs:
            with captured():
                lowered = backend.lower(rung.model, example, stored.quantization, calibration)
            paths[rung.id] = Path(tmp) / f"{rung.id}{backend.suffix}"
            paths[rung.id].write_bytes(lowered.data)
            print(f"lowered {rung.id}: {len(lowered.data) / 1e6:.2f} MB", flush=True)
        name = stored.backend.value
        entries = {rid: TimedEntry(name, path, example.numpy()) for rid, path in paths.items()}
        for file, inputs in _part_inputs(stored).items():
            entries[file] = TimedEntry(name, parts_dir(Path(tmp) / "table.json") / file, inputs)
        samples = time_entries(entries, WARMUP, args.runs, stored.threads)  # on the table's threads, as it was timed
        medians = {key: float(np.median(values)) for key, values in samples.items()}
        table = stored.with_times({k: v for k, v in medians.items() if k not in paths})
        rows = [_row(rung, table, stored, paths[rung.id], medians[rung.id], example.shape) for rung in rungs]
    latency_mape = statistics.median(r["latency_error_percent"] for r in rows)
    stored_mape = statistics.median(r["stored_table_error_percent"] for r in rows)
    memory_mape = statistics.median(r["memory_error_percent"] for r in rows)
    print(f"{'rung':28} {'pred ms':>8} {'meas ms':>8} {'err %':>6} {'pred MB':>8} {'meas MB':>8} {'err %':>6}")
    for r in rows:
        print(
            f"{r['id']:28} {r['predicted_ms']:8.3f} {r['measured_ms']:8.3f} {r['latency_error_percent']:6.1f} "
            f"{r['predicted_memory_bytes'] / 1e6:8.2f} {r['measured_memory_bytes'] / 1e6:8.2f} "
            f"{r['memory_error_percent']:6.1f}"
        )
    print(
        f"latency MAPE (median abs % error) {latency_mape:.1f}% side by side, {stored_mape:.1f}% with the table's "
        f"own times (profiled in an earlier run); memory {memory_mape:.1f}%"
    )
    results = {
        "target": target.name,
        "backend": table.backend.value,
        "quantization": table.quantization.value,
        "threads": table.threads,
        "machine": table.machine,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "runs": args.runs,
        "parts": sum(len(m.all()) for m in table.models.values()),
        "profiling_seconds": table.profiling_seconds,
        "latency_median_abs_percent_error": round(latency_mape, 2),
        "latency_median_abs_percent_error_stored_table": round(stored_mape, 2),
        "memory_median_abs_percent_error": round(memory_mape, 2),
        "rungs": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


def _part_inputs(table: CostTable) -> dict[str, np.ndarray]:
    """A zero input of the right shape for every program of the table."""
    programs = [table.overhead, *(p for m in table.models.values() for p in [*m.all(), m.whole])]
    return {p.file: np.zeros(p.input_shape, dtype=np.float32) for p in programs}


def _row(
    rung: Rung, table: CostTable, stored: CostTable, path: Path, measured_ms: float, shape: tuple[int, ...]
) -> dict[str, Any]:
    size = path.stat().st_size
    predicted_ms, predicted_bytes = predicted_costs(table, rung)
    stored_ms, _ = predicted_costs(stored, rung)
    memory = measure_memory(table.backend.value, path, tuple(shape), table.threads).peak_delta
    return {
        "id": rung.id,
        "params": rung.params,
        "macs": rung.macs,
        "bytes": size,
        "predicted_ms": predicted_ms,
        "measured_ms": round(measured_ms, 4),
        "latency_error_percent": round(_percent_error(predicted_ms, measured_ms), 2),
        "stored_table_predicted_ms": stored_ms,
        "stored_table_error_percent": round(_percent_error(stored_ms, measured_ms), 2),
        "predicted_memory_bytes": predicted_bytes,
        "measured_memory_bytes": memory,
        "memory_error_percent": round(_percent_error(predicted_bytes, memory), 2),
    }


if __name__ == "__main__":
    main()

"""Writing device figures from ``benchmark_model`` logs into a bundle's manifest or a cost table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from restnetc.bench.benchmark_log import BenchmarkLog, BenchmarkLogError
from restnetc.budget.cost_table import CostTable
from restnetc.bundle.manifest import Artifact, DeviceLatency, DeviceMemory, Manifest
from restnetc.units import MIB


def _ms(us: float | None) -> float | None:
    return None if us is None else round(us / 1e3, 4)


def _bytes(mib: float | None) -> int | None:
    return None if mib is None else round(mib * MIB)


def device_figures(log: BenchmarkLog) -> tuple[DeviceLatency, DeviceMemory]:
    """The manifest's device latency and memory entries for one parsed log."""
    stats = log.inference
    latency = DeviceLatency(
        inference=round(log.inference_ms, 4),
        average=round(log.inference_avg_us / 1e3, 4),
        first=round(log.first_inference_us / 1e3, 4),
        init=round(log.init_us / 1e3, 4),
        std=_ms(stats.std_us) if stats else None,
        p5=_ms(stats.p5_us) if stats else None,
        p95=_ms(stats.p95_us) if stats else None,
        threads=log.threads,
        runs=stats.count if stats else None,
        log=log.source,
    )
    memory = DeviceMemory(
        peak=_bytes(log.peak_memory_mb),
        init_delta=_bytes(log.memory_init_delta_mb),
        overall_delta=_bytes(log.memory_overall_delta_mb),
    )
    return latency, memory


def _artifact_for(log: BenchmarkLog, artifacts: Sequence[Artifact]) -> int:
    """The index of the artifact ``log`` measured: its graph's file name and, for a file several artifacts
    share (a ladder program), the signature the log says it ran."""
    name = _graph_name(log)
    matches = [i for i, a in enumerate(artifacts) if PurePosixPath(a.file).name == name]
    if not matches:
        known = ", ".join(sorted({PurePosixPath(a.file).name for a in artifacts if a.backend == "litert"}))
        raise BenchmarkLogError(f"{log.source}: graph {name!r} is not an artifact of this bundle (it has: {known})")
    if len(matches) == 1:
        return matches[0]
    entries = ", ".join(artifacts[i].entry_point for i in matches)
    if log.signature is None:
        raise BenchmarkLogError(
            f"{log.source}: {name} holds several signatures ({entries}) and the log names none "
            "(run benchmark_model with --signature_to_run_for, as bench plan does)"
        )
    chosen = [i for i in matches if artifacts[i].entry_point == log.signature]
    if not chosen:
        raise BenchmarkLogError(f"{log.source}: {name} has no signature {log.signature!r} (it has: {entries})")
    return chosen[0]


def merge_device_figures(manifest: Manifest, logs: Sequence[BenchmarkLog]) -> Manifest:
    """A copy of ``manifest`` with device latency and memory set on the artifact each log measured."""
    artifacts = list(manifest.artifacts)
    for log in logs:
        index = _artifact_for(log, artifacts)
        latency, memory = device_figures(log)
        artifact = artifacts[index]
        artifacts[index] = artifact.model_copy(
            update={
                "latency_ms": artifact.latency_ms.model_copy(update={"device": latency}),
                "memory_bytes": artifact.memory_bytes.model_copy(update={"device": memory}),
            }
        )
    return manifest.model_copy(update={"artifacts": artifacts})


def _graph_name(log: BenchmarkLog) -> str:
    if log.graph is None:
        raise BenchmarkLogError(f"{log.source}: the log names no graph (no 'Graph: [...]' line)")
    return PurePosixPath(log.graph).name


def merge_table_times(table: CostTable, logs: Sequence[BenchmarkLog]) -> CostTable:
    """``table`` with every part's time taken from its device log: a ``device`` cost table.

    Every part needs a log (a table that mixes host and device times would predict neither).
    """
    ms = {_graph_name(log): round(log.inference_ms, 5) for log in logs}
    parts = table.files()
    if missing := [file for file in parts if file not in ms]:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BenchmarkLogError(f"no log for {len(missing)} of the table's {len(parts)} parts: {shown}")
    if unknown := sorted(set(ms) - set(parts)):
        raise BenchmarkLogError(f"logs of graphs that are not parts of this table: {', '.join(unknown)}")
    threads = {log.threads for log in logs if log.threads is not None}
    return table.with_times(ms).model_copy(
        update={
            "source": "device",
            "machine": f"device ({len(logs)} benchmark_model logs)",
            "threads": threads.pop() if len(threads) == 1 else table.threads,
        }
    )

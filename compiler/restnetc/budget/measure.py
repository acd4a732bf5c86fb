"""Host measurements of artifacts: interleaved latency runs, and memory in a separate process.

``HostLatency`` and ``HostMemory`` are the records a measurement returns; the manifest stores them as they are.
Latency is timed in this process when every runtime involved already runs on the threads asked, else in a fresh
process sized for them first (``restnetc.budget.latency_probe``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from restnetc.cache import Cache, stage_key
from restnetc.config.base import StrictModel
from restnetc.config.target import Measurement
from restnetc.errors import RestnetcError
from restnetc.native_output import captured
from restnetc.progress import track
from restnetc.runners import get_runtime


class HostLatency(StrictModel):
    """Milliseconds on the build host: median and spread of ``runs`` timed runs (``time_interleaved``: ``warmup``
    untimed runs each time the artifact opens for a block of them)."""

    median: float
    p10: float
    p90: float
    threads: int
    runs: int
    warmup: int
    load_average: tuple[float, float, float]


class HostMemory(StrictModel):
    """Peak resident memory to load the artifact and run one inference, in a fresh process on the host."""

    peak_delta: int = Field(description="VmHWM after load+run minus VmRSS before load, bytes")
    peak_total: int = Field(
        description="VmHWM after load+run, bytes: the whole probe process, Python and the backend's runtime "
        "package included (no compiler toolchain)"
    )
    program: int | None = Field(
        default=None,
        description="VmRSS once the file is open in its runtime, before any entry point loads, minus VmRSS "
        "before, bytes: what every entry point of the file shares (None in bundles built before it was measured)",
    )


BLOCK = 10
"""Consecutive timed runs of one program before the next opens: enough to amortise opening and warming it."""

Opener = Callable[[], Callable[[], object]]
"""Opens a program and returns the call that runs it once (``Runtime.invoker``); the program closes when the call
is dropped."""


def time_interleaved(openers: Mapping[str, Opener], warmup: int, runs: int) -> dict[str, list[float]]:
    """Milliseconds of each of ``runs`` calls per program: blocks of ``BLOCK`` calls of each program in turn, round
    after round, so machine drift hits all alike. Each block opens its program, runs it ``warmup`` times untimed,
    times the block and drops the program before the next one opens.

    Only the program being timed is alive, as on a device that runs one rung at a time. A runtime that gives each
    program its own thread pool (LiteRT's XNNPACK) otherwise times several pools against each other on the same
    cores: four copies of one LiteRT program open on two cores timed one copy 1.36-1.38x the fastest in 2 of 5
    processes (``benchmarks/timing_protocol.py``; up to 5x in scratch runs), and 1.01-1.04x opened alone."""
    samples: dict[str, list[float]] = {key: [] for key in openers}
    rounds = -(-runs // BLOCK)
    for round_index in track(range(rounds), f"timing {len(openers)} models (interleaved blocks)"):
        block = min(BLOCK, runs - round_index * BLOCK)
        for key, open_program in openers.items():
            invoke = open_program()
            for _ in range(warmup):
                invoke()
            for _ in range(block):
                start = time.perf_counter()
                invoke()
                samples[key].append((time.perf_counter() - start) * 1e3)
            del invoke  # closes the program (and its thread pool, where it has its own)
    return samples


@dataclass(frozen=True)
class TimedEntry:
    """One entry point to time: ``backend``'s artifact at ``path`` (its ``entry_point``, default as
    ``Runtime.invoker``'s) run on ``example`` (float32, batch of one)."""

    backend: str
    path: Path
    example: np.ndarray
    entry_point: str | None = None


def time_entries(entries: Mapping[str, TimedEntry], warmup: int, runs: int, threads: int) -> dict[str, list[float]]:
    """``time_interleaved`` of every entry's ``Runtime.invoker`` on ``threads`` threads: in this process when each
    runtime involved already runs on them here (``Runtime.runs_on``), else in a fresh process that sizes the
    runtimes first (``Runtime.claim_threads``), since a runtime with one pool per process cannot be resized while
    programs hold it."""
    names = {entry.backend for entry in entries.values()}
    if all(get_runtime(name).runs_on(threads) for name in names):
        return time_here(entries, warmup, runs, threads)
    with tempfile.TemporaryDirectory(prefix="restnetc-latency-") as folder:
        described = {}
        for index, (key, entry) in enumerate(entries.items()):
            example = Path(folder) / f"{index}.npy"
            np.save(example, entry.example)
            described[key] = {
                "backend": entry.backend,
                "path": str(entry.path),
                "entry_point": entry.entry_point,
                "example": str(example),
            }
        spec = Path(folder) / "spec.json"
        spec.write_text(json.dumps({"threads": threads, "warmup": warmup, "runs": runs, "entries": described}))
        command = [sys.executable, "-m", "restnetc.budget.latency_probe", str(spec)]
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600)
        except subprocess.TimeoutExpired as expired:
            message = f"latency probe on {threads} threads: no result after {expired.timeout:.0f} s"
            raise RestnetcError(message) from None
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RestnetcError(f"latency probe on {threads} threads failed: {tail[0]}")
    samples: dict[str, list[float]] = json.loads(lines[-1])
    return samples


def time_here(entries: Mapping[str, TimedEntry], warmup: int, runs: int, threads: int) -> dict[str, list[float]]:
    """``time_interleaved`` of every entry's invoker in this process, whatever threads its runtimes run on."""
    return time_interleaved({key: opener(entry, threads) for key, entry in entries.items()}, warmup, runs)


def opener(entry: TimedEntry, threads: int) -> Opener:
    """What opens ``entry``'s ``Runtime.invoker`` on ``threads`` threads, the runtime's own output captured."""
    runtime = get_runtime(entry.backend)

    def open_program() -> Callable[[], object]:
        with captured():
            return runtime.invoker(entry.path, threads, entry.example, entry.entry_point)

    return open_program


def measure_latency(entries: Mapping[str, TimedEntry], protocol: Measurement, threads: int) -> dict[str, HostLatency]:
    """Per entry: median and spread of the target's protocol on ``threads`` threads, runs interleaved."""
    samples = time_entries(entries, protocol.warmup, protocol.runs, threads)
    load = os.getloadavg()
    return {
        key: HostLatency(
            median=round(float(np.median(values)), 4),
            p10=round(float(np.percentile(values, 10)), 4),
            p90=round(float(np.percentile(values, 90)), 4),
            threads=threads,
            runs=protocol.runs,
            warmup=protocol.warmup,
            load_average=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
        )
        for key, values in samples.items()
    }


def measure_memory(
    backend: str, path: Path, shape: tuple[int, ...], threads: int, entry_point: str | None = None
) -> HostMemory:
    """Peak resident memory of loading ``path`` (its entry point ``entry_point``, default as
    ``Runtime.load``) and running it once on an input of ``shape``, in a fresh process."""
    dims = "x".join(str(n) for n in shape)
    command = [sys.executable, "-m", "restnetc.budget.memory_probe", backend, str(path), dims, str(threads)]
    command += [] if entry_point is None else [entry_point]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RestnetcError(f"{path}: memory probe failed: {tail[0]}")
    figures = json.loads(lines[-1])
    return HostMemory(
        peak_delta=int(figures["peak_delta"]), peak_total=int(figures["peak_total"]), program=int(figures["program"])
    )


def probe_memory(
    backend: str, path: Path, shape: tuple[int, ...], threads: int, cache: Cache, entry_point: str | None = None
) -> HostMemory:
    """``measure_memory``, cached by the artifact's sha256 and the probe's settings."""
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    key = stage_key("host-memory", sha, shape, threads, os.uname().machine, *([entry_point] if entry_point else []))
    if (stored := cache.load_json(key)) is not None:
        return HostMemory(**stored)
    memory = measure_memory(backend, path, shape, threads, entry_point)
    cache.save_json(key, memory.model_dump())
    return memory

"""Host measurements of artifacts: interleaved latency runs, and memory in a separate process.

``HostLatency`` and ``HostMemory`` are the records a measurement returns; the manifest stores them as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from pydantic import Field

from restnetc.cache import Cache, stage_key
from restnetc.config.base import StrictModel
from restnetc.config.target import Measurement
from restnetc.errors import RestnetcError
from restnetc.progress import track


class HostLatency(StrictModel):
    """Milliseconds on the build host: median and spread of ``runs`` timed runs after ``warmup`` runs."""

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
    peak_total: int = Field(description="VmHWM after load+run, bytes (includes the Python runtime)")
    program: int | None = Field(
        default=None,
        description="VmRSS once the file is open in its runtime, before any entry point loads, minus VmRSS "
        "before, bytes: what every entry point of the file shares (None in bundles built before it was measured)",
    )


BLOCK = 10
"""Consecutive runs of one program before the next: a runtime's worker threads keep spinning for a moment
after a run (XNNPACK's thread pool does), and switching program on every run would time each program
against the previous one's spinning threads (3x slower with 40 LiteRT programs on 2 cores)."""


def time_interleaved(invokers: Mapping[str, Callable[[], object]], warmup: int, runs: int) -> dict[str, list[float]]:
    """Milliseconds of each of ``runs`` calls per invoker after ``warmup`` calls; blocks of ``BLOCK`` calls of
    each invoker in turn, round after round, so machine drift hits all alike."""
    for invoke in invokers.values():
        for _ in range(warmup):
            invoke()
    samples: dict[str, list[float]] = {key: [] for key in invokers}
    rounds = -(-runs // BLOCK)
    for round_index in track(range(rounds), f"timing {len(invokers)} models (interleaved blocks)"):
        block = min(BLOCK, runs - round_index * BLOCK)
        for key, invoke in invokers.items():
            for _ in range(block):
                start = time.perf_counter()
                invoke()
                samples[key].append((time.perf_counter() - start) * 1e3)
    return samples


def measure_latency(
    invokers: Mapping[str, Callable[[], object]], protocol: Measurement, threads: int
) -> dict[str, HostLatency]:
    """Per artifact (``Backend.invoker``): median and spread of the target's protocol, runs interleaved."""
    samples = time_interleaved(invokers, protocol.warmup, protocol.runs)
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
    """Peak resident memory of loading ``path`` (its entry point ``entry_point``, default as the backend's
    ``load``) and running it once on an input of ``shape``, in a fresh process."""
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

"""Host measurements of artifacts: interleaved latency runs, and memory in a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from restnetc.backends import Runner
from restnetc.bundle.manifest import HostLatency, HostMemory, Latency
from restnetc.config.target import Measurement
from restnetc.errors import RestnetcError
from restnetc.progress import track


def measure_latency(
    runners: dict[str, Runner], example: np.ndarray, protocol: Measurement, threads: int
) -> dict[str, Latency]:
    """Per artifact: warm-up, then timed single-image runs interleaved across artifacts (drift hits all alike)."""
    for runner in runners.values():
        for _ in range(protocol.warmup):
            runner(example)
    samples: dict[str, list[float]] = {key: [] for key in runners}
    for _ in track(range(protocol.runs), "host latency (interleaved runs)"):
        for key, runner in runners.items():
            start = time.perf_counter()
            runner(example)
            samples[key].append((time.perf_counter() - start) * 1e3)
    load = os.getloadavg()
    return {
        key: Latency(
            host=HostLatency(
                median=round(float(np.median(values)), 4),
                p10=round(float(np.percentile(values, 10)), 4),
                p90=round(float(np.percentile(values, 90)), 4),
                threads=threads,
                runs=protocol.runs,
                warmup=protocol.warmup,
                load_average=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
            )
        )
        for key, values in samples.items()
    }


def measure_memory(backend: str, path: Path, size: int, threads: int) -> HostMemory:
    """Peak resident memory of loading ``path`` and running it once, in a fresh Python process."""
    command = [sys.executable, "-m", "restnetc.bundle.memory_probe", backend, str(path), str(size), str(threads)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RestnetcError(f"{path}: memory probe failed: {tail[0]}")
    figures = json.loads(lines[-1])
    return HostMemory(peak_delta=int(figures["peak_delta"]), peak_total=int(figures["peak_total"]))

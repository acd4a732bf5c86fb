"""Scale-out on this machine: the CKA pass on 1 and 2 torchrun ranks, and lowering jobs on 1 and 2 local workers
or Ray workers, each against its one-process arm, measured side by side in one run.

- ``cka``: the demo parents' streamed CKA over ``--images`` calibration images at ``--size`` px, timed inside
  the job (from the first minibatch to the all-reduced matrix), as one plain process (its default threads),
  under ``torchrun --nproc-per-node 1`` (the distributed entry with one worker: no group) and under
  ``--nproc-per-node 2`` (gloo; one thread per rank, torchrun's default). Arms are interleaved, ``--repeats``
  times; the launch wall time (interpreter, imports, models, rendezvous) is reported beside.
- ``lowering``: ``--jobs`` fp32 lowerings (EfficientNet-Lite0 at ``--size`` px, both backends in turn) through
  ``restnetc.workers``' local pool and Ray tasks, with 1 and 2 workers (Ray: a local cluster of that many CPUs).

Usage: ``.venv/bin/python benchmarks/scale_out.py [--images 512] [--size 64] [--repeats 3] [--jobs 4]``.
Writes ``benchmarks/results/scale_out.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from restnetc.backends import get_backend
from restnetc.config import load_project
from restnetc.config.target import Backend, Quantization
from restnetc.data import load_split
from restnetc.distributed import joined
from restnetc.frontend.features import stream_cka
from restnetc.models import BlockModel, decompose
from restnetc.models.factory import build_model
from restnetc.workers import LocalPool, RayTasks

RESULTS = Path(__file__).parent / "results" / "scale_out.json"
HSIC_BYTES = 8
"""float64: one all-reduced HSIC sum."""


def _parents(size: int) -> list[BlockModel]:
    project, _ = load_project(None)
    return [decompose(build_model(project.models[key], size)).eval() for key in ("a", "b")]


def cka_job(images: int, size: int, batch: int) -> None:
    """One rank's run (under torchrun or alone): prints rank 0's timing as one JSON line."""
    project, _ = load_project(None)
    data = project.data.model_copy(update={"input_size": size, "train_images": images})
    calibration = load_split(data, "train", project.seed)
    front, back = _parents(size)
    with joined() as ranks:
        start = time.perf_counter()
        stream_cka(front, back, calibration, batch, "unbiased", ranks)
        seconds = time.perf_counter() - start
        if ranks.main:
            print(json.dumps({"seconds": seconds, "ranks": ranks.size, "threads": torch.get_num_threads()}))


def _launch(arm: str, args: argparse.Namespace) -> dict[str, Any]:
    job = [__file__, "--cka-job", "--images", str(args.images), "--size", str(args.size), "--batch", str(args.batch)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    command = [sys.executable, *job] if arm == "plain" else [*torchrun, arm.removeprefix("torchrun-"), *job]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return {**figures, "wall": wall}


def _lower(state: tuple[BlockModel, int], backend: str) -> int:
    """One job: the model lowered to fp32 with ``backend``; returns the artifact's size."""
    model, size = state
    example = torch.zeros(1, 3, size, size)
    return len(get_backend(Backend(backend)).lower(model, example, Quantization.FP32, example).data)


def _lowering(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    project, _ = load_project(None)
    state = (decompose(build_model(project.models["b"], args.size)).eval(), args.size)
    jobs = [("litert", "executorch")[i % 2] for i in range(args.jobs)]
    seconds: dict[str, dict[str, float]] = {}
    for workers in (1, 2) if jobs else ():
        for name, executor in (("local", LocalPool()), ("ray", RayTasks())):
            if name == "ray":
                import ray

                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            start = time.perf_counter()
            sizes = dict(executor.run_all(_lower, state, jobs, workers))
            seconds.setdefault(name, {})[str(workers)] = round(time.perf_counter() - start, 2)
            assert len(sizes) == len(jobs) and all(size > 0 for size in sizes.values())
            if name == "ray":
                ray.shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=4, help="lowering jobs per arm; 0: no lowering arms")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--cka-job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cka_job:
        cka_job(args.images, args.size, args.batch)
        return
    arms = ("plain", "torchrun-1", "torchrun-2")
    runs: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for _ in range(args.repeats):
        for arm in arms:
            runs[arm].append(_launch(arm, args))
    median = {arm: {k: statistics.median(r[k] for r in runs[arm]) for k in ("seconds", "wall")} for arm in arms}
    layers = sum(len(p.blocks) for p in _parents(args.size))
    results = {
        "benchmark": "scale_out",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "cka": {
            "images": args.images,
            "input_size": args.size,
            "batch": args.batch,
            "median_seconds": median,
            "runs": runs,
            "one_worker_overhead_percent": round(
                100 * (median["torchrun-1"]["seconds"] / median["plain"]["seconds"] - 1), 1
            ),
            "all_reduce_bytes_per_rank": layers * layers * HSIC_BYTES + HSIC_BYTES,
        },
        "lowering_seconds": {"jobs": args.jobs, "input_size": args.size, **_lowering(args)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"cka": results["cka"]["median_seconds"], "lowering": results["lowering_seconds"]}, indent=2))


if __name__ == "__main__":
    main()

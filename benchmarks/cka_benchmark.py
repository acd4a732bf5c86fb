"""CKA search cost on the demo parents: overhead over plain forward passes, and speed-up over per-pair CKA.

Measures, in one run and interleaved so machine noise hits every arm alike (medians of ``--repeats``):
- ``forward``: both parents' block outputs over the calibration set, no CKA;
- ``streaming``: the same passes with restnetc's streaming CKA (what ``restnetc search`` runs);
- on the same stored features, the CKA arithmetic alone: restnetc's single matrix product per minibatch
  vs a straightforward per-pair implementation (every layer pair recomputes its Gram matrices and the
  three unbiased HSIC terms per minibatch, as per-pair CKA libraries do), and the largest difference.

Usage: ``.venv/bin/python benchmarks/cka_benchmark.py [--images 512] [--batch 64] [--size 64]``.
Writes ``benchmarks/results/cka.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from restnetc.config import load_project
from restnetc.data import load_split
from restnetc.frontend.cka import StreamingCKA, u_center
from restnetc.frontend.features import stream_cka
from restnetc.models import BlockModel, decompose
from restnetc.models.factory import build_model, describe_spec

RESULTS = Path(__file__).parent / "results" / "cka.json"
T = TypeVar("T")
Features = list[list[torch.Tensor]]  # [minibatch][layer]


def pairwise_cka(features_a: Features, features_b: Features) -> np.ndarray:
    """Reference: minibatch unbiased CKA computed pair by pair, batch by batch, Grams recomputed per pair."""

    def hsic(k: torch.Tensor, l_: torch.Tensor) -> torch.Tensor:
        n = k.shape[0]
        return (u_center(k) * u_center(l_)).sum() / (n * (n - 3))

    def gram(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1).double()
        return flat @ flat.T

    layers_a, layers_b = len(features_a[0]), len(features_b[0])
    result = np.zeros((layers_a, layers_b))
    for i in range(layers_a):
        for j in range(layers_b):
            xy = xx = yy = torch.zeros((), dtype=torch.float64)
            for batch_a, batch_b in zip(features_a, features_b, strict=True):
                k, l_ = gram(batch_a[i]), gram(batch_b[j])
                xy, xx, yy = xy + hsic(k, l_), xx + hsic(k, k), yy + hsic(l_, l_)
            result[i, j] = float(xy / torch.sqrt(xx.clamp(min=0) * yy.clamp(min=0)))
    return result


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    project, _ = load_project(None)
    data = project.data.model_copy(update={"input_size": args.size, "train_images": args.images})
    images = load_split(data, "train", project.seed)
    parents: list[BlockModel] = [decompose(build_model(project.models[k], args.size)) for k in ("a", "b")]
    names = [describe_spec(project.models[k]) for k in ("a", "b")]
    batches = [b for b, _ in images.batches(args.batch) if len(b) >= 4]

    def forward_only() -> tuple[Features, Features]:
        return tuple([list(p.block_outputs(b)) for b in batches] for p in parents)  # type: ignore[return-value]

    def streaming() -> np.ndarray:
        return stream_cka(parents[0], parents[1], images, args.batch, "unbiased")[0]

    def accumulate(features: tuple[Features, Features]) -> np.ndarray:
        acc = StreamingCKA(len(features[0][0]), len(features[1][0]), "unbiased")
        for batch_a, batch_b in zip(*features, strict=True):
            acc.update(batch_a, batch_b)
        return acc.compute()

    forward_only()  # warm-up
    arms: dict[str, list[float]] = {"forward": [], "streaming": [], "accumulate_only": [], "pairwise_only": []}
    matrices: dict[str, np.ndarray] = {}
    for _ in range(args.repeats):
        seconds, features = timed(forward_only)
        arms["forward"].append(seconds)
        seconds, matrices["streaming"] = timed(streaming)
        arms["streaming"].append(seconds)
        seconds, matrices["accumulate"] = timed(functools.partial(accumulate, features))
        arms["accumulate_only"].append(seconds)
    seconds, matrices["pairwise"] = timed(lambda: pairwise_cka(*features))
    arms["pairwise_only"].append(seconds)

    median = {name: statistics.median(values) for name, values in arms.items()}
    results = {
        "benchmark": "cka",
        "models": {"a": names[0], "b": names[1]},
        "blocks": [len(parents[0].blocks), len(parents[1].blocks)],
        "images": sum(len(b) for b in batches),
        "batch": args.batch,
        "input_size": args.size,
        "repeats": args.repeats,
        "median_seconds": {k: round(v, 4) for k, v in median.items()},
        "runs_seconds": {k: [round(x, 4) for x in v] for k, v in arms.items()},
        "overhead_ratio_streaming_over_forward": round(median["streaming"] / median["forward"], 3),
        "speedup_accumulate_over_pairwise": round(median["pairwise_only"] / median["accumulate_only"], 1),
        "max_abs_diff_streaming_vs_pairwise": float(np.abs(matrices["streaming"] - matrices["pairwise"]).max()),
        "max_abs_diff_accumulate_vs_pairwise": float(np.abs(matrices["accumulate"] - matrices["pairwise"]).max()),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg(),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Would stitch-aware quantization pay? Each stitch fine-tuned again under the lowering's own int8 simulation.

Issue 17's lever 3 (``restnetc.bundle.stitch_quantization``), measured before the pipeline applies it. Searches
a pair's project (``--pair``: the demo on ``--target``, or a zoo pair on Table I's target; from ``--cache-dir``, or
afresh) with the held-out sizes given, then, for each stitched rung and backend, three arms:

- *plain*: the rung's int8 graph exactly as lowering makes it (``Graphs``: the backend's quantizer, the target's
  calibration images, the back parent's quantization on the shared modules, bias correction);
- *float* (the control arm): the stitching layer trained ``--epochs`` more on the train split in float, then the
  same ``Graphs`` path;
- *tuned*: the same training with every other value quantized as the plain arm's calibration quantizes it
  (frozen fake quantization) and the stitch's own weights fake-quantized from their current range
  (straight-through gradients), then the same ``Graphs`` path. Both trained arms take half cross-entropy on the
  labels, half KL divergence to the rung's own fp32 logits.

Each arm's int8 graph is scored simulated in eager PyTorch and as the backend's artifact in its runtime. Reports
top-1 on validation and test of each arm's eager fp32 and int8 forms, and tuned minus plain and tuned minus
float int8 in the runtime, paired (Newcombe 95% interval, exact McNemar p): the second tells quantization-awareness
from the extra training.

Usage: ``.venv/bin/python benchmarks/stitch_qat.py [--pair demo|deits-deitti|...] [--validation-images N]
[--test-images 10000] [--epochs 1] [--lr 1e-4] [--backends ...] [--cache-dir C]``. Writes
``benchmarks/results/stitch_qat.{json,md}``, keeping the stored rows of pairs and backends not run again when the
settings are the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.base import Backend
from restnetc.bundle import stitch_quantization
from restnetc.bundle.ladder import Rung, ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.bundle.stitch_quantization import StitchTuning
from restnetc.cache import Cache
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.pipeline.search import run_search
from restnetc.results import SearchResult

RESULTS = Path(__file__).parent / "results"
SPLITS = ("validation", "test")
GRAPHS = ("eager", "int8", "runtime")
"""What each arm is scored as: eager fp32, its int8 graph simulated in PyTorch, its artifact in the runtime."""


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(batch) for batch in images.split(250)])


def _scores(
    rung: Rung, backend: Backend, result: SearchResult, observations: Observations, artifact: Path, threads: int
) -> dict[str, Any]:
    """Per split: per-image correctness of eager fp32, of the int8 graph lowering makes simulated, and of its
    artifact (written to ``artifact``) in ``backend``'s runtime on ``threads`` threads."""
    graph, quantizer = Graphs(rung, backend, observations).int8(())
    with captured():
        data = backend.compile(graph, observations.calibration[:1], quantizer).data
    artifact.write_bytes(data)
    scores: dict[str, Any] = {}
    for split in SPLITS:
        images = getattr(result, split)
        eager = _logits(rung.model.eval(), images.images).argmax(1) == images.labels
        int8 = _logits(graph, images.images).argmax(1) == images.labels
        runtime = common.runtime_correct(backend, artifact, threads, images.images, images.labels)
        scores[split] = {"eager": eager.numpy(), "int8": int8.numpy(), "runtime": runtime}
    return scores


ARMS = ("plain", "float", "tuned")
"""plain: the rung as the search left it; float: its stitch trained more in float (the control arm); tuned: the
same training under the backend's int8 simulation."""


def _rows(
    pair: str, backend: Backend, result: SearchResult, observations: Observations, threads: int, args: Any
) -> list[dict[str, Any]]:
    """The three arms' int8 of every stitched rung of ``pair`` with ``backend``, run on ``threads`` threads."""
    rows = []
    tuning = StitchTuning(epochs=args.epochs, lr=args.lr)
    images, labels = result.train.images, result.train.labels
    with tempfile.TemporaryDirectory(prefix="stitch-qat-artifacts-") as work:
        for rung in (r for r in ladder(result) if r.role == "variant"):
            seconds, arms = {}, {}
            for arm in ARMS:
                start = time.perf_counter()
                if arm == "float":
                    arm_rung = stitch_quantization.in_float(rung, images, labels, tuning)
                elif arm == "tuned":
                    observed = Graphs(rung, backend, observations).observed()
                    arm_rung = stitch_quantization.under_int8(rung, observed, images, labels, tuning)
                else:
                    arm_rung = rung
                seconds[arm] = round(time.perf_counter() - start, 1)
                artifact = Path(work) / f"{rung.id}-{backend.name}-{arm}{backend.suffix}"
                arms[arm] = _scores(arm_rung, backend, result, observations, artifact, threads)
            row: dict[str, Any] = {
                "run": f"{pair}/{backend.name}",
                "pair": pair,
                "rung": rung.id,
                "backend": backend.name,
                "tune_seconds": seconds["tuned"],
                "float_seconds": seconds["float"],
            }
            for split in SPLITS:
                row[split] = {
                    **{
                        f"{arm}_{graph}": round(float(arms[arm][split][graph].mean() * 100), 2)
                        for arm in ARMS
                        for graph in GRAPHS
                    },
                    "images": len(arms["plain"][split]["eager"]),
                    "tuned_minus_plain_runtime": common.paired(
                        arms["tuned"][split]["runtime"], arms["plain"][split]["runtime"]
                    ),
                    "tuned_minus_float_runtime": common.paired(
                        arms["tuned"][split]["runtime"], arms["float"][split]["runtime"]
                    ),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_pair_arguments(parser, test_images=10000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--backends", nargs="+", type=BackendName, help="default: the target's")
    parser.add_argument("--cache-dir", type=Path, help="a stage cache to search with (default: a fresh one)")
    args = parser.parse_args()
    project, target = common.pair_setup(args)
    with tempfile.TemporaryDirectory(prefix="stitch-qat-") as fresh:
        result = run_search(project, target, Cache(args.cache_dir or Path(fresh)))
    calibration = result.train.images[: target.runtime.calibration_images]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stitch-qat-observations-") as kept:
        # each model calibrated once per backend, as in a build: the back parent serves every rung as donor
        observations = Observations(Cache(Path(kept)), calibration, "stitch-qat", {})
        for name in args.backends or target.runtime.backends:
            rows += _rows(args.pair, get_backend(name), result, observations, target.runtime.host_threads(), args)
    rows = common.store_rows("stitch_qat", {"epochs": args.epochs, "lr": args.lr, "arms": list(ARMS)}, rows, "run")
    header = ["pair", "rung", "backend", "split", *(f"{graph}: plain / float / tuned" for graph in GRAPHS)]
    header += ["runtime tuned - plain [95%], p", "runtime tuned - float [95%], p"]
    body = [
        [
            row["pair"],
            row["rung"],
            row["backend"],
            f"{split} ({row[split]['images']})",
            *(" / ".join(str(row[split][f"{arm}_{graph}"]) for arm in ARMS) for graph in GRAPHS),
            *(
                "{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}], p={p_value}".format(
                    **row[split][f"tuned_minus_{arm}_runtime"]
                )
                for arm in ("plain", "float")
            ),
        ]
        for row in rows
        for split in SPLITS
    ]
    write_text_atomic(RESULTS / "stitch_qat.md", common.markdown_table(header, body))


if __name__ == "__main__":
    main()

"""Would stitch-aware quantization pay? Each stitch fine-tuned again under the lowering's own int8 simulation.

Issue 17's lever 3, measured before it is built into the pipeline. Searches a pair's project (``--pair``: the
demo on ``--target``, or a zoo pair on Table I's target; from ``--cache-dir``, or afresh) with the held-out sizes
given, then, for each stitched rung and backend:

- *plain*: the rung's int8 graph exactly as lowering makes it (``Graphs``: the backend's quantizer, the target's
  calibration images, the back parent's quantization on the shared modules, bias correction);
- *tuned*: the stitching layer trained ``--epochs`` more on the train split with every other value quantized as
  that very calibration quantizes it (frozen fake quantization) and the stitch's own weights fake-quantized per
  channel from their current range (straight-through gradients); loss: half cross-entropy on the labels, half
  KL divergence to the rung's own fp32 logits. The tuned stitch then goes through the same ``Graphs`` path.

Both int8 graphs are scored simulated in eager PyTorch and as the backend's artifact in its runtime. Reports
top-1 on validation and test of eager fp32 and of both int8 forms, and tuned minus plain int8 in the runtime,
paired (Newcombe 95% interval, exact McNemar p).

Usage: ``.venv/bin/python benchmarks/stitch_qat.py [--pair demo|deits-deitti|...] [--validation-images N]
[--test-images 10000] [--epochs 1] [--lr 1e-4] [--backends ...] [--cache-dir C]``. Writes
``benchmarks/results/stitch_qat.{json,md}``, keeping the stored rows of pairs and backends not run again when the
settings are the same.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.base import Backend
from restnetc.backends.native_output import captured
from restnetc.backends.pt2e import export_batched, observe
from restnetc.bundle.ladder import Rung, ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache
from restnetc.config.loader import load_target
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Backend as BackendName
from restnetc.config.target import TargetConfig
from restnetc.pipeline.search import run_search
from restnetc.results import SearchResult

RESULTS = Path(__file__).parent / "results"
SPLITS = ("validation", "test")


class _Frozen(nn.Module):
    """Fake quantization with the quantization parameters a calibrated observer settled on."""

    def __init__(self, observer: nn.Module) -> None:
        super().__init__()
        scale, zero_point = observer.calculate_qparams()  # type: ignore[operator]
        self.register_buffer("scale", scale.float())
        self.register_buffer("zero_point", zero_point.int())
        self.low, self.high = int(observer.quant_min), int(observer.quant_max)  # type: ignore[arg-type]
        self.axis = int(observer.ch_axis) if scale.numel() > 1 else None  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis is not None:
            return torch.fake_quantize_per_channel_affine(
                x, self.scale, self.zero_point, self.axis, self.low, self.high
            )
        return torch.fake_quantize_per_tensor_affine(x, float(self.scale), int(self.zero_point), self.low, self.high)


class _Live(nn.Module):
    """Per-channel fake quantization of a trained weight at the range its observer would see now."""

    def __init__(self, observer: nn.Module) -> None:
        super().__init__()
        self.observer = copy.deepcopy(observer)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        observer = self.observer
        with torch.no_grad():
            observer.reset_min_max_vals()  # type: ignore[operator]
            observer(weight.detach())
            scale, zero_point = observer.calculate_qparams()  # type: ignore[operator]
        return torch.fake_quantize_per_channel_affine(
            weight, scale.float(), zero_point.int(), int(observer.ch_axis), observer.quant_min, observer.quant_max
        )


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(batch) for batch in images.split(250)])


def _tuned(rung: Rung, backend: Backend, result: SearchResult, observations: Observations, args: Any) -> Rung:
    """``rung`` with its stitching layer trained under ``backend``'s int8 simulation, calibrated as its plain
    graph was (``observations`` holds that calibration: ``_scores`` made it)."""
    calibration = observations.calibration
    exported = export_batched(rung.model, calibration)
    quantizer = backend.int8_quantizer()
    made = observations.observed(
        backend, exported, rung.quantized_digest, lambda: observe(exported, quantizer, calibration, rung.donor)
    )
    graph = copy.deepcopy(made.observed.graph)
    for node in list(graph.graph.nodes):
        if node.op == "call_module" and "activation_post_process" in str(node.target):
            observer, source = graph.get_submodule(str(node.target)), node.args[0]
            live = source.op == "get_attr" and str(source.target).startswith("stitch.")
            setattr(graph, str(node.target), _Live(observer) if live else _Frozen(observer))
    graph.recompile()
    stitch = {name: p for name, p in graph.named_parameters() if name.startswith("stitch.")}
    for name, parameter in graph.named_parameters():
        parameter.requires_grad_(name in stitch)
    optimizer = torch.optim.Adam(stitch.values(), lr=args.lr)
    images, labels = result.train.images, result.train.labels
    teacher = _logits(rung.model.eval(), images)
    generator = torch.Generator().manual_seed(0)
    for _ in range(args.epochs):
        for batch in torch.randperm(len(images), generator=generator).split(32):
            out = graph(images[batch])
            kl = F.kl_div(
                F.log_softmax(out, 1), F.log_softmax(teacher[batch], 1), log_target=True, reduction="batchmean"
            )
            loss = 0.5 * F.cross_entropy(out, labels[batch]) + 0.5 * kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model = copy.deepcopy(rung.model)
    own = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in stitch.items():
            own[name].copy_(value)
    return dataclasses.replace(rung, model=model)


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


def _rows(
    pair: str, backend: Backend, result: SearchResult, observations: Observations, threads: int, args: Any
) -> list[dict[str, Any]]:
    """Plain and tuned int8 of every stitched rung of ``pair`` with ``backend``, run on ``threads`` threads."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="stitch-qat-artifacts-") as work:
        for rung in (r for r in ladder(result) if r.role == "variant"):
            files = {
                kind: Path(work) / f"{rung.id}-{backend.name}-{kind}{backend.suffix}" for kind in ("plain", "tuned")
            }
            plain = _scores(rung, backend, result, observations, files["plain"], threads)
            start = time.perf_counter()
            tuned_rung = _tuned(rung, backend, result, observations, args)
            seconds = time.perf_counter() - start
            tuned = _scores(tuned_rung, backend, result, observations, files["tuned"], threads)
            row: dict[str, Any] = {
                "run": f"{pair}/{backend.name}",
                "pair": pair,
                "rung": rung.id,
                "backend": backend.name,
                "tune_seconds": round(seconds, 1),
            }
            for split in SPLITS:
                row[split] = {
                    **{
                        f"{kind}_{graph}": round(float(scores[split][graph].mean() * 100), 2)
                        for kind, scores in (("plain", plain), ("tuned", tuned))
                        for graph in ("eager", "int8", "runtime")
                    },
                    "images": len(plain[split]["eager"]),
                    "tuned_minus_plain_runtime": common.paired(tuned[split]["runtime"], plain[split]["runtime"]),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _setup(args: Any) -> tuple[ProjectConfig, TargetConfig]:
    """The pair's project with the held-out sizes asked for, and its target."""
    sizes = {"validation_images": args.validation_images, "test_images": args.test_images}
    project = common.pair_project(args.pair, {name: n for name, n in sizes.items() if n is not None})
    if args.pair == "demo":
        return project, load_target(args.target)
    return project, TargetConfig.model_validate(common.pair_target(common.pair(args.pair)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=["demo", *(pair.slug for pair in common.PAIRS)], default="demo")
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"), help="the demo's target")
    parser.add_argument("--validation-images", type=int, help="default: the project's own (the demo's at most)")
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--backends", nargs="+", type=BackendName, help="default: the target's")
    parser.add_argument("--cache-dir", type=Path, help="a stage cache to search with (default: a fresh one)")
    args = parser.parse_args()
    project, target = _setup(args)
    with tempfile.TemporaryDirectory(prefix="stitch-qat-") as fresh:
        result = run_search(project, target, Cache(args.cache_dir or Path(fresh)))
    calibration = result.train.images[: target.runtime.calibration_images]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stitch-qat-observations-") as kept:
        # each model calibrated once per backend, as in a build: the back parent serves every rung as donor
        observations = Observations(Cache(Path(kept)), calibration, "stitch-qat", {})
        for name in args.backends or target.runtime.backends:
            rows += _rows(args.pair, get_backend(name), result, observations, target.runtime.host_threads(), args)
    rows = common.store_rows("stitch_qat", {"epochs": args.epochs, "lr": args.lr}, rows, "run")
    header = ["pair", "rung", "backend", "split", "fp32 plain -> tuned", "int8 simulated", "int8 runtime"]
    header.append("runtime tuned - plain [95%], p")
    body = [
        [
            row["pair"],
            row["rung"],
            row["backend"],
            f"{split} ({row[split]['images']})",
            f"{row[split]['plain_eager']} -> {row[split]['tuned_eager']}",
            f"{row[split]['plain_int8']} -> {row[split]['tuned_int8']}",
            f"{row[split]['plain_runtime']} -> {row[split]['tuned_runtime']}",
            "{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}], p={p_value}".format(
                **row[split]["tuned_minus_plain_runtime"]
            ),
        ]
        for row in rows
        for split in SPLITS
    ]
    write_text_atomic(RESULTS / "stitch_qat.md", common.markdown_table(header, body))


if __name__ == "__main__":
    main()

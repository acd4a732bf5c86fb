"""Issue 17's per-lever table: what each int8 lever buys every demo artifact, measured in its runtime.

Searches the demo project (``--cache-dir``, or afresh; ``--test-images`` test images, 10,000 by default, so that a
paired int8-minus-fp32 difference carries about +-0.3 points), takes its ladder (parents and stitched rungs, as a
build lowers them) and, for each rung and backend of the target, lowers fp32 and four int8 artifacts, each lever
added to the one before (calibrated on the target's count of real training images, no float islands):

- ``stock``: the backend's own PT2E quantizer as its documentation configures it (per-channel weights), prepared,
  calibrated and converted with none of restnetc's quantizer changes or graph rewrites. Compiling is still
  restnetc's: the float interface, and for LiteRT the channels-last pad rewriter (registered process-wide when the
  backend is made), so its stock graph is leaner than litert-torch's alone.
- ``lean``: restnetc's quantizer and graph rewrites (``Backend.int8_quantizer``, ``refine``; observers after
  ReLU6, pads sharing their input's parameters, LiteRT's adds quantized): the int8 graph has the fp32 graph's ops.
- ``bias-corrected``: ``lean`` with bias correction (``backends.bias_correction``).
- ``shipped``: as a build lowers it (``bundle.lowering.Graphs``): a stitched rung's modules shared with its back
  parent take that parent's quantization and corrected biases. For a parent this is ``bias-corrected``; its row
  repeats that artifact.

Each artifact is run in its runtime on the validation and test splits (top-1 minus eager fp32, paired: Newcombe
95% interval, exact McNemar p), its bytes per parameter and the seconds its lowering took are recorded (quantize:
calibration, conversion, correction; ``lean`` and ``bias-corrected`` share one calibration, counted in both;
``shipped`` rungs share their donor's, counted in the first), and its bare invocation is timed side by side with
the other artifacts of its rung and backend, each open alone while timed (``--threads`` threads, ``--rounds``
interleaved rounds of ``--runs`` calls, median round) for the int8 / fp32 time of the same rung: with all 30 of a
backend's programs loaded at once, ExecuTorch's int8 lost more to the crowding than its fp32 (RESULTS section 13),
and LiteRT's thread pools, one per program, timed each other. Issue 17
asks, for every artifact: all-int8 within 0.5 points of eager fp32, at most 1.10 bytes per parameter, at most
0.6 x fp32's time.

Usage: ``.venv/bin/python benchmarks/int8_levers.py [--target targets/cortex-a53.yaml] [--test-images 10000]
[--backends ...] [--cache-dir C]``. Writes ``benchmarks/results/int8_levers.{json,md}``, keeping the stored rows
of backends not run again when the settings are the same.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    get_symmetric_quantization_config as xnnpack_config,
)
from litert_torch.quantize import pt2e_quantizer
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import Quantizer

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from int8_speed import interleaved_medians
from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.base import Backend
from restnetc.backends.pt2e import _calibrate, export_batched, observe
from restnetc.budget.measure import Opener, TimedEntry, opener
from restnetc.bundle.ladder import Rung, eager_logits, ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache
from restnetc.config.loader import load_target
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.pipeline.search import run_search
from restnetc.results import SearchResult

RESULTS = Path(__file__).parent / "results"
LEVERS = ("stock", "lean", "bias-corrected", "shipped")
"""Each lever adds to the one before; the row order of the table."""
STOCK: dict[str, Callable[[], Quantizer]] = {
    "executorch": lambda: XNNPACKQuantizer().set_global(xnnpack_config(is_per_channel=True)),
    "litert": lambda: pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    ),
}
"""Each backend's own PT2E quantizer, as its documentation configures it."""
SPLITS = ("validation", "test")


def _stock(backend: Backend, model: nn.Module, calibration: torch.Tensor) -> tuple[nn.Module, Quantizer]:
    quantizer = STOCK[backend.name]()
    prepared = prepare_pt2e(export_batched(model, calibration).module(), quantizer)
    _calibrate(prepared, calibration)  # as every restnetc calibration runs
    return convert_pt2e(prepared, fold_quantize=backend.fold_quantize), quantizer


class _Artifacts:
    """One rung's artifacts with one backend, lowered into ``work`` with the seconds each took."""

    def __init__(self, rung: Rung, backend: Backend, observations: Observations, work: Path) -> None:
        self.rung, self.backend, self.observations, self.work = rung, backend, observations, work
        self.calibration = observations.calibration
        self.paths: dict[str, Path] = {}
        self.seconds: dict[str, dict[str, float]] = {}

    def _compile(self, name: str, graph: nn.Module, quantizer: Quantizer | None, quantize_seconds: float) -> None:
        start = time.perf_counter()
        with captured():
            data = self.backend.compile(graph, self.calibration[:1], quantizer).data
        path = self.work / f"{self.rung.id}-{self.backend.name}-{name}{self.backend.suffix}"
        path.write_bytes(data)
        self.paths[name] = path
        compile_seconds = time.perf_counter() - start
        self.seconds[name] = {"quantize": round(quantize_seconds, 1), "compile": round(compile_seconds, 1)}

    def lower_all(self) -> None:
        model, backend, calibration = self.rung.model.eval(), self.backend, self.calibration
        self._compile("fp32", model, None, 0.0)
        start = time.perf_counter()
        with captured():
            graph, quantizer = _stock(backend, model, calibration)
        self._compile("stock", graph, quantizer, time.perf_counter() - start)
        start = time.perf_counter()
        with captured():
            exported = export_batched(model, calibration)
            quantizer = backend.int8_quantizer()
            observed = observe(exported, quantizer, calibration)
        calibrating = time.perf_counter() - start
        start = time.perf_counter()
        with captured():
            graph = convert_pt2e(copy.deepcopy(observed.graph), fold_quantize=backend.fold_quantize)
            backend.refine(graph, quantizer)
        self._compile("lean", graph, quantizer, calibrating + time.perf_counter() - start)
        start = time.perf_counter()
        with captured():
            graph, quantizer = backend.quantize(exported, calibration, (), observed)
        self._compile("bias-corrected", graph, quantizer, calibrating + time.perf_counter() - start)
        if self.rung.donor is None:
            self.paths["shipped"], self.seconds["shipped"] = (
                self.paths["bias-corrected"],
                self.seconds["bias-corrected"],
            )
            return
        start = time.perf_counter()
        graph, quantizer = Graphs(self.rung, backend, self.observations).int8(())
        self._compile("shipped", graph, quantizer, time.perf_counter() - start)


def _rows(backend: Backend, result: SearchResult, calibration: torch.Tensor, args: Any) -> list[dict[str, Any]]:
    """Every lever's artifact of every rung with ``backend``, scored, sized and timed side by side."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="int8-levers-") as work:
        # each model calibrated once for ``shipped``, as in a build: the back parent serves every rung as donor
        observations = Observations(Cache(Path(work) / "observations"), calibration, "int8-levers", {})
        for rung in ladder(result):
            artifacts = _Artifacts(rung, backend, observations, Path(work))
            artifacts.lower_all()
            calls: dict[str, Opener] = {}
            own: list[dict[str, Any]] = []
            eager = {}
            for split in SPLITS:
                images = getattr(result, split)
                with torch.no_grad():
                    logits = eager_logits(rung.model, images.images)
                eager[split] = logits.argmax(1).numpy() == images.labels.numpy()
            for lever in ("fp32", *LEVERS):
                path = artifacts.paths[lever]
                row: dict[str, Any] = {
                    "rung": rung.id,
                    "backend": backend.name,
                    "lever": lever,
                    "bytes_per_param": round(path.stat().st_size / rung.params, 4),
                    "seconds": artifacts.seconds[lever],
                }
                for split in SPLITS:
                    images = getattr(result, split)
                    correct = common.runtime_correct(backend, path, args.threads, images.images, images.labels)
                    row[split] = {
                        "eager_fp32": round(100 * float(eager[split].mean()), 2),
                        "top1": round(100 * float(correct.mean()), 2),
                        "minus_eager_fp32": common.paired(correct, eager[split]),
                    }
                own.append(row)
                calls[lever] = opener(TimedEntry(backend.name, path, calibration[:1].numpy()), args.threads)
            median = interleaved_medians(calls, args.rounds, args.runs)
            rows += own
            for row in own:
                row["median_ms"] = round(median[row["lever"]], 4)
                row["over_fp32_time"] = round(median[row["lever"]] / median["fp32"], 3)
                print(json.dumps(row), flush=True)
    return rows


def _markdown(rows: list[dict[str, Any]]) -> str:
    header = [
        "rung",
        "backend",
        "lever",
        "test - fp32 [95%]",
        "validation - fp32",
        "bytes/param",
        "lower s",
        "/ fp32 time",
    ]
    body = []
    for row in rows:
        if row["lever"] == "fp32":
            continue
        test, validation = row["test"]["minus_eager_fp32"], row["validation"]["minus_eager_fp32"]
        seconds = row["seconds"]["quantize"] + row["seconds"]["compile"]
        body.append(
            [
                row["rung"],
                row["backend"],
                row["lever"],
                "{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}]".format(**test),
                f"{validation['difference']:+.2f}",
                f"{row['bytes_per_param']:.3f}",
                f"{seconds:.0f}",
                f"{row['over_fp32_time']:.2f}",
            ]
        )
    summary_header = ["lever", "artifacts", "test within 0.5 / 1.0", "max bytes/param", "max / fp32 time", "lower s"]
    summary = []
    for lever in LEVERS:
        chosen = [row for row in rows if row["lever"] == lever]
        drops = [abs(row["test"]["minus_eager_fp32"]["difference"]) for row in chosen]
        seconds = sum(row["seconds"]["quantize"] + row["seconds"]["compile"] for row in chosen)
        summary.append(
            [
                lever,
                len(chosen),
                f"{sum(d <= 0.5 for d in drops)} / {sum(d <= 1.0 for d in drops)}",
                f"{max(row['bytes_per_param'] for row in chosen):.3f}",
                f"{max(row['over_fp32_time'] for row in chosen):.2f}",
                f"{seconds:.0f}",
            ]
        )
    return common.markdown_table(summary_header, summary) + "\n" + common.markdown_table(header, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--backends", nargs="+", type=BackendName, help="default: the target's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, help="a stage cache to search with (default: a fresh one)")
    args = parser.parse_args()
    target = load_target(args.target)
    project = common.demo({"test_images": args.test_images})
    with tempfile.TemporaryDirectory(prefix="int8-levers-search-") as fresh:
        result = run_search(project, target, Cache(args.cache_dir or Path(fresh)))
    calibration = result.train.images[: target.runtime.calibration_images]
    rows = []
    for name in args.backends or target.runtime.backends:
        rows += _rows(get_backend(name), result, calibration, args)
    settings = {"test_images": len(result.test.labels), "validation_images": len(result.validation.labels)}
    settings |= {"calibration_images": len(calibration), "threads": args.threads, "timed_together": "rung"}
    rows = common.store_rows("int8_levers", settings, rows, "backend")
    write_text_atomic(RESULTS / "int8_levers.md", _markdown(rows))


if __name__ == "__main__":
    main()

"""Is int8 faster than fp32, and is its graph as lean? The demo's two parents through restnetc's own backends.

Builds the demo project's parents with their task heads (``load_parents``: the demo's shipped parents, from
``--cache-dir`` or trained afresh) and lowers each with every backend of the target in fp32 and int8 (PT2E calibrated
on the target's count of real training images, no float islands). Then, side by side in one run: the bare invocation
of each artifact is timed (``Runtime.invoker``, ``--threads`` threads; ``--rounds`` rounds of ``--runs`` calls, the
rounds interleaved across artifacts so drift on a shared machine hits all alike, each artifact open alone while
timed; the median round is reported), its operators are counted from the file (``Backend.operators``), and its top-1
on the first ``--images`` test images is compared, paired, with the eager fp32 model's (Newcombe 95% interval, exact
McNemar p). Reports int8 time / fp32 time per model and backend: issue 17 asks for at most 0.6 on both backends.
ExecuTorch int8 is also lowered with ExecuTorch's stock XNNPACK quantizer (``int8-stock``: pads observed after, so
they run in float between two ``Convert`` nodes), which measures what ``backends.executorch_lean`` buys alone.

Usage: ``.venv/bin/python benchmarks/int8_speed.py [--target targets/cortex-a53.yaml] [--cache-dir C]``.
Writes ``benchmarks/results/int8_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.base import Backend as BackendContract
from restnetc.backends.base import ops_run
from restnetc.backends.executorch import ExecuTorchBackend
from restnetc.budget.measure import Opener, TimedEntry, opener
from restnetc.bundle.ladder import eager_logits
from restnetc.cache import Cache
from restnetc.config.loader import load_project, load_target
from restnetc.config.target import Backend, Quantization
from restnetc.data import load_splits
from restnetc.evaluation import compare_paired
from restnetc.native_output import captured
from restnetc.pipeline.parents import load_parents

RESULTS = Path(__file__).parent / "results" / "int8_speed.json"
Key = TypeVar("Key")
WATCHED = ("TRANSPOSE", "PAD", "QUANTIZE", "DEQUANTIZE", "xnnpack:Convert", "xnnpack:StaticConstantPad")
"""Ops an int8 graph should not have beyond its fp32 graph's (layout and requantize work): LiteRT's, and the
nodes of ExecuTorch's XNNPACK graphs."""


def _round(call: Callable[[], object], runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - start) / runs * 1e3


def interleaved_medians(openers: Mapping[Key, Opener], rounds: int, runs: int) -> dict[Key, float]:
    """Milliseconds per call of each program: ``rounds`` rounds of ``runs`` calls, the rounds interleaved across
    programs so that drift on a shared machine hits all alike; the median round. Each round opens its program
    afresh and alone (``openers``) and warms it with ``runs`` untimed calls first: several LiteRT programs open at
    once time their thread pools against each other (``restnetc.budget.measure.time_interleaved``)."""
    times: dict[Key, list[float]] = {key: [] for key in openers}
    for _ in range(rounds):
        for key, open_program in openers.items():
            call = open_program()
            _round(call, runs)
            times[key].append(_round(call, runs))
            del call
    return {key: statistics.median(values) for key, values in times.items()}


class _StockExecuTorch(ExecuTorchBackend):
    """ExecuTorch with its stock XNNPACK quantizer: the lowering before ``backends.executorch_lean`` (``refine``
    leaves a stock quantizer's graph as converted)."""

    def int8_quantizer(self) -> XNNPACKQuantizer:
        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def _variants(backends: Iterable[Backend]) -> Iterator[tuple[Backend, str, BackendContract, Quantization]]:
    """(backend name, variant, backend, quantization) for each artifact to lower and time."""
    for name in backends:
        for quantization in (Quantization.FP32, Quantization.INT8):
            yield name, quantization.value, get_backend(name), quantization
        if name is Backend.EXECUTORCH:
            yield name, "int8-stock", _StockExecuTorch(), Quantization.INT8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--images", type=int, help="test images scored; default: the demo's whole test split")
    parser.add_argument("--cache-dir", type=Path, help="a build cache holding the demo's task heads")
    args = parser.parse_args()
    target = load_target(args.target)
    project, _ = load_project(None)
    splits = load_splits(project.data, project.seed)
    calibration = splits.train.images[: target.runtime.calibration_images]
    count = args.images or len(splits.test.labels)
    images, labels = splits.test.images[:count], splits.test.labels[:count].numpy()
    rows: dict[str, dict[str, object]] = {}
    calls: dict[str, Opener] = {}
    operators: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for parent in load_parents(project, splits.train, Cache(args.cache_dir or Path(tmp) / "cache")):
            model = parent.model
            with torch.no_grad():
                eager = eager_logits(model, images).argmax(1).numpy() == labels
            rows[f"{parent.name}/eager/fp32"] = {"top1": round(100 * float(eager.mean()), 2)}
            for name, variant, backend, quantization in _variants(target.runtime.backends):
                key = f"{parent.name}/{name.value}/{variant}"
                path = Path(tmp) / f"{parent.key}-{name.value}-{variant}{backend.suffix}"
                with captured():
                    lowered = backend.lower(model, calibration[:1], quantization, calibration)
                    path.write_bytes(lowered.data)
                    correct = backend.runtime.load(path, args.threads)(images.numpy()).argmax(1) == labels
                    calls[key] = opener(TimedEntry(name.value, path, calibration[:1].numpy()), args.threads)
                operators[key] = backend.operators(lowered.data, lowered.entry_point)
                paired = compare_paired(correct, eager)
                rows[key] = {
                    "bytes": len(lowered.data),
                    "operators": operators[key],
                    "top1": round(100 * float(correct.mean()), 2),
                    "minus_eager_fp32": round(paired.difference, 2),
                    "interval": [round(v, 2) for v in paired.interval],
                    "mcnemar_p": round(paired.p_value, 4),
                }
        median = interleaved_medians(calls, args.rounds, args.runs)
    for key in calls:
        rows[key]["median_ms"] = round(median[key], 4)
    ratios = {
        key: round(median[key] / median[key.rsplit("/", 1)[0] + "/fp32"], 3)
        for key in calls
        if not key.endswith("/fp32")
    }
    result = {
        "input_size": project.data.input_size,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "test_images": len(images),
        "int8_over_fp32_time": ratios,
        "artifacts": rows,
    }
    write_text_atomic(RESULTS, json.dumps(result, indent=2) + "\n")
    for key in calls:
        ops, row = operators[key], rows[key]
        watched = ", ".join(f"{op} {ops.get(op, 0)}" for op in WATCHED if ops.get(op))
        print(f"{key:44} {median[key]:8.3f} ms {ops_run(ops):4d} ops ({watched}) top-1 {row['top1']}%", end=" ")
        print(f"{row['minus_eager_fp32']:+.2f} {row['interval']} vs eager fp32")
    print("int8 / fp32 time:", json.dumps(ratios))


if __name__ == "__main__":
    main()

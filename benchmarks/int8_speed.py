"""Is int8 faster than fp32, and is its graph as lean? The demo's two parents through restnetc's own backends.

Builds the demo project's parents (their ImageNet weights and classifiers, the demo's input size) and lowers each
with every backend of the target in fp32 and int8 (PT2E calibrated on the target's count of real training
images, no float islands). Then, side by side in one run: the bare invocation of each artifact is timed
(``Backend.invoker``, ``--threads`` threads; ``--rounds`` rounds of ``--runs`` calls, the rounds interleaved
across artifacts so drift on a shared machine hits all alike; the median round is reported), its operators are
counted from the file (``Backend.operators``), and its top-1 is compared with the eager fp32 model's on
``--images`` real test images (agreement; the ImageNet classes mean nothing on this data, the agreement does).
Reports int8 time / fp32 time per model and backend: issue 17 asks for below 1 on both backends.

Usage: ``.venv/bin/python benchmarks/int8_speed.py [--target targets/cortex-a53.yaml]``.
Writes ``benchmarks/results/int8_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.native_output import captured
from restnetc.config.loader import load_project, load_target
from restnetc.config.target import Quantization
from restnetc.data import load_split
from restnetc.models.factory import build_model, describe_spec

RESULTS = Path(__file__).parent / "results" / "int8_speed.json"
WATCHED = ("TRANSPOSE", "PAD", "QUANTIZE", "DEQUANTIZE")
"""LiteRT ops an int8 graph should not have beyond its fp32 graph's (layout and requantize work)."""


def _round(call: Callable[[], object], runs: int) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - start) / runs * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    target = load_target(args.target)
    project, _ = load_project(None)
    size = project.data.input_size
    calibration = load_split(project.data, "train", project.seed).images[: target.runtime.calibration_images]
    images = load_split(project.data, "test", project.seed).images[: args.images]
    rows: dict[str, dict[str, object]] = {}
    calls: dict[str, Callable[[], object]] = {}
    operators: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for role, spec in sorted(project.models.items()):
            model = build_model(spec, size)
            with torch.no_grad():
                eager = model(images).argmax(1).numpy()
            for name in target.runtime.backends:
                backend = get_backend(name)
                for quantization in (Quantization.FP32, Quantization.INT8):
                    key = f"{describe_spec(spec)}/{name.value}/{quantization.value}"
                    path = Path(tmp) / f"{role}-{name.value}-{quantization.value}{backend.suffix}"
                    with captured():
                        lowered = backend.lower(model, calibration[:1], quantization, calibration)
                        path.write_bytes(lowered.data)
                        top1 = backend.load(path, args.threads)(images.numpy()).argmax(1)
                        calls[key] = backend.invoker(path, args.threads, calibration[:1].numpy())
                    operators[key] = backend.operators(lowered.data, lowered.entry_point)
                    rows[key] = {
                        "bytes": len(lowered.data),
                        "operators": operators[key],
                        "agreement_with_eager_fp32": round(float((top1 == eager).mean()), 4),
                    }
        for call in calls.values():
            _round(call, args.runs)  # warm-up
        rounds: dict[str, list[float]] = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():
                rounds[key].append(_round(call, args.runs))
    median = {key: statistics.median(times) for key, times in rounds.items()}
    for key, row in rows.items():
        row["median_ms"] = round(median[key], 4)
    ratios = {
        key.removesuffix("/int8"): round(median[key] / median[key.removesuffix("/int8") + "/fp32"], 3)
        for key in rows
        if key.endswith("/int8")
    }
    result = {
        "input_size": size,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "images": len(images),
        "int8_over_fp32_time": ratios,
        "artifacts": rows,
    }
    write_text_atomic(RESULTS, json.dumps(result, indent=2) + "\n")
    for key, row in rows.items():
        ops = operators[key]
        watched = ", ".join(f"{op} {ops.get(op, 0)}" for op in WATCHED)
        agree = row["agreement_with_eager_fp32"]
        print(f"{key:44} {median[key]:8.3f} ms {sum(ops.values()):4d} ops ({watched}) agree {agree}")
    print("int8 / fp32 time:", json.dumps(ratios))


if __name__ == "__main__":
    main()

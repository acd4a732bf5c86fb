"""Int8 against fp32 latency of every shipped rung as the runtime shim runs it: natively, and emulated as a Cortex-A53.

Builds the target with ``restnetc build`` as it is (its quantization, int8 for the shipped targets) and a copy
with ``runtime.quantization: fp32`` (no stitch tuning, float32 LiteRT input), into one stage cache
(``--cache-dir``), so the copy reuses the parents, stitches and searches and mostly lowers and verifies. Builds
the shim natively and cross-built for aarch64 (``shim_benchmark.build``) and times ``restnet-shim run --repeat``
on one input for every rung both bundles ship, per backend: natively, and under qemu-user as a Cortex-A53
(``-cpu cortex-a53``: NEON without the dot product, as on a Raspberry Pi 3). Both backends run on ``--threads``
threads (default: the target's, capped at this host's usable CPUs, as the build measured it). ``--rounds``
rounds, each timing every artifact once (the two quantizations in alternating order), so that drift on a shared
machine hits all alike; per artifact, the median over rounds of each process's median run. Reports int8 time /
fp32 time per rung and backend (issue 17 asks for at most 0.6). Emulated time is an indication only: qemu
translates each instruction and models neither the A53's pipeline nor its memory.

Usage: ``.venv/bin/python benchmarks/shim_latency.py --cache-dir C | --bundles AS_BUILT FP32
[--target targets/cortex-a53.yaml] [--threads N] [--rounds 3] [--runs 10] [--qemu-runs 3]``. Writes
``benchmarks/results/shim_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import ai_edge_litert
import numpy as np
import yaml

from restnetc.atomic import write_text_atomic
from restnetc.bundle.manifest import read_manifest
from restnetc.config.loader import load_target, target_file
from restnetc.config.target import Quantization, TargetConfig
from shim_benchmark import (
    AARCH64_EXECUTORCH,
    AARCH64_LITERT,
    AARCH64_TOOLCHAIN,
    NATIVE_EXECUTORCH,
    ROOT,
    build,
    emulated,
)

RESULTS = Path(__file__).parent / "results" / "shim_latency.json"
PLATFORMS = ("native", "qemu-cortex-a53")
LITERT = {"native": Path(ai_edge_litert.__file__).parent / "libLiteRt.so", "qemu-cortex-a53": AARCH64_LITERT}


def _count(high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to ``high``."""

    def parse(text: str) -> int:
        if not text.isdigit() or not 1 <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {high}, got {text!r}")
        return int(text)

    return parse


def _fp32_copy(config: TargetConfig, scratch: Path) -> Path:
    """``config`` (as ``load_target`` gives it: paths absolute) as a file that builds fp32, whatever needs int8
    switched off."""
    runtime = config.runtime.model_copy(
        update={"quantization": Quantization.FP32, "stitch_tuning": None, "litert_input": "float32"}
    )
    copy = scratch / f"{config.name}-fp32.yaml"
    data = config.model_copy(update={"runtime": runtime}).model_dump(mode="json", by_alias=True, exclude_none=True)
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    return copy


def _build(target: Path, out: Path, cache: Path) -> float:
    """``restnetc build`` of ``target`` into ``out``; its wall seconds."""
    start = time.perf_counter()
    command = [sys.executable, "-m", "restnetc", "build", "--target", target, "--out", out, "--cache-dir", cache]
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def _run_ms(
    shim: Path, platform: str, bundle: Path, artifact: tuple[str, str], image: Path, runs: int, threads: int
) -> float:
    """The median of ``runs`` timed runs (ms) of one artifact in one ``restnet-shim run`` process on ``threads``."""
    variant, backend = artifact
    prefix = emulated(shim) if platform != "native" else []
    command = [
        *prefix, shim / "restnet-shim", "run", bundle, "--input", image, "--override", variant,
        "--backend", backend, "--litert-lib", LITERT[platform], "--threads", str(threads), "--repeat", str(runs),
        "--json",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"shim_latency: {variant} ({backend}) failed on {platform}:\n{result.stderr[-3000:]}")
    return float(json.loads(result.stdout)["timing"]["median_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=ROOT / "targets" / "cortex-a53.yaml")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cache-dir", type=Path, help="stage cache both builds share")
    source.add_argument(
        "--bundles", nargs=2, type=Path, metavar=("AS_BUILT", "FP32"),
        help="time these bundles of the target and its fp32 copy, built before (to re-time a changed shim)",
    )  # fmt: skip
    parser.add_argument("--threads", type=_count(256), help="threads of both runtimes (default: the target's)")
    parser.add_argument("--rounds", type=_count(100), default=3)
    parser.add_argument("--runs", type=_count(1000), default=10, help="timed runs per process, natively")
    parser.add_argument("--qemu-runs", type=_count(1000), default=3, help="timed runs per process, emulated")
    args = parser.parse_args()
    target = target_file(args.target)
    config = load_target(target)
    if config.runtime.quantization is Quantization.FP32:
        sys.exit(f"shim_latency: {target} builds fp32 already: give a target that quantizes")
    threads = args.threads or config.runtime.host_threads()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        targets = {"as-built": target, "fp32": _fp32_copy(config, scratch)}
        if args.bundles:
            bundles = dict(zip(targets, args.bundles, strict=True))
            seconds = {}
        else:
            bundles = {name: scratch / name for name in targets}
            seconds = {name: _build(targets[name], bundles[name], args.cache_dir) for name in targets}
        shims = {"native": scratch / "shim", "qemu-cortex-a53": scratch / "shim-aarch64"}
        build(shims["native"], NATIVE_EXECUTORCH)
        build(shims["qemu-cortex-a53"], AARCH64_EXECUTORCH, f"-DCMAKE_TOOLCHAIN_FILE={AARCH64_TOOLCHAIN}")
        manifests = {name: read_manifest(out) for name, out in bundles.items()}
        for name, manifest in manifests.items():
            runtime, want = manifest.target["runtime"], config.runtime.quantization if name == "as-built" else "fp32"
            if manifest.target["name"] != config.name or runtime["quantization"] != want:  # type: ignore[index]
                sys.exit(f"shim_latency: {bundles[name]} is not a {want} bundle of target {config.name}")
        quantization = str(manifests["as-built"].target["runtime"]["quantization"])  # type: ignore[index]
        shipped = {name: {(a.id, a.backend) for a in m.artifacts} for name, m in manifests.items()}
        artifacts = sorted(shipped["as-built"] & shipped["fp32"], key=lambda a: (a[1], a[0]))
        for name, ids in shipped.items():
            for variant, backend in sorted(ids - set(artifacts)):
                print(f"shim_latency: {variant} ({backend}) ships only in the {name} bundle: not compared")
        if not artifacts:
            sys.exit("shim_latency: the two bundles ship no rung in common")
        image = scratch / "input.f32"
        shape = manifests["as-built"].artifacts[0].input.shape
        np.random.default_rng(0).standard_normal(shape[1:]).astype(np.float32).tofile(image)
        times: dict[tuple[str, str, str, str], list[float]] = {}
        for platform in PLATFORMS:
            runs = args.runs if platform == "native" else args.qemu_runs
            for round_index in range(args.rounds):
                for artifact in artifacts:
                    order = list(bundles) if round_index % 2 == 0 else list(reversed(bundles))
                    for name in order:
                        ms = _run_ms(shims[platform], platform, bundles[name], artifact, image, runs, threads)
                        times.setdefault((platform, *artifact, name), []).append(ms)
    median = {key: statistics.median(values) for key, values in times.items()}
    rows = []
    for platform in PLATFORMS:
        for variant, backend in artifacts:
            built, fp32 = (median[platform, variant, backend, name] for name in ("as-built", "fp32"))
            rows.append(
                {"platform": platform, "backend": backend, "variant": variant, "fp32_ms": round(fp32, 3),
                 f"{quantization}_ms": round(built, 3), f"{quantization}_over_fp32": round(built / fp32, 3)}
            )  # fmt: skip
    figures = {
        "target": str(target.resolve().relative_to(ROOT) if target.resolve().is_relative_to(ROOT) else target),
        "quantization": quantization,
        "settings": {"threads": threads, "rounds": args.rounds, "runs": args.runs, "qemu_runs": args.qemu_runs},
        "build_seconds": {name: round(s, 1) for name, s in seconds.items()} or "bundles given (--bundles)",
        "goal_int8_over_fp32": 0.6,
        "rows": rows,
    }
    write_text_atomic(RESULTS, json.dumps(figures, indent=2) + "\n")
    for row in rows:
        ratio = row[f"{quantization}_over_fp32"]
        print(f"{row['platform']:>16} {row['backend']:>10} {row['variant']:>14}: {ratio:.2f} x fp32")


if __name__ == "__main__":
    main()

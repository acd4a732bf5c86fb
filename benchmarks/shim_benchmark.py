"""Runtime shim: stripped library sizes (core alone and each backend) and selection time on a real bundle.

Builds ``runtime_shim/`` in release mode with both backends, strips copies of the libraries and reports
their sizes (goal: core at most 64 KB), then runs ``bench_select`` (open the bundle, probe memory, first
selection with sha256 validation of the chosen file, later selections) for each backend; medians.

Usage: ``.venv/bin/python benchmarks/shim_benchmark.py [--bundle dist/cortex-a53] [--runs 200]``.
Writes ``benchmarks/results/shim.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import executorch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "shim.json"
LIBRARIES = {
    "core": "librestnet_shim.so",
    "litert_backend": "librestnet_shim_litert.so",
    "executorch_backend": "librestnet_shim_executorch.so",
}


def build(build_dir: Path) -> None:
    package = Path(next(iter(executorch.__path__))) / "share" / "cmake"
    options = ["-DCMAKE_BUILD_TYPE=Release", "-DRS_WITH_EXECUTORCH=ON", f"-Dexecutorch_DIR={package}"]
    subprocess.run(["cmake", "-S", ROOT / "runtime_shim", "-B", build_dir, *options], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build_dir, "-j2"], check=True, capture_output=True)


def stripped_sizes(build_dir: Path, scratch: Path) -> dict[str, int]:
    sizes = {}
    for name, library in LIBRARIES.items():
        copy = scratch / library
        shutil.copy(build_dir / library, copy)
        subprocess.run(["strip", "--strip-unneeded", copy], check=True)
        sizes[name] = copy.stat().st_size
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "cortex-a53")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_dir, scratch = Path(tmp) / "build", Path(tmp) / "stripped"
        scratch.mkdir()
        build(build_dir)
        sizes = stripped_sizes(build_dir, scratch)
        timings = {}
        for backend in ("litert", "executorch"):
            command = [build_dir / "bench_select", args.bundle, backend, str(args.runs)]
            result = subprocess.run(command, check=True, capture_output=True, text=True)
            timings[backend] = json.loads(result.stdout)
    figures = {
        "machine": platform.machine(),
        "bundle": str(args.bundle),
        "stripped_bytes": sizes,
        "core_goal_bytes": 64 * 1024,
        "selection_us": timings,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

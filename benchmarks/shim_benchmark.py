"""Runtime shim: stripped library sizes (core alone and each backend) and selection time on a real bundle.

Builds ``runtime_shim/`` in release mode with both backends, natively and cross-built for aarch64 (Cortex-A53,
with the aarch64 ExecuTorch package that ``scripts/bootstrap.sh`` unpacks), strips copies of the libraries and
reports their sizes (goal: core at most 64 KB), then runs ``bench_select`` natively (open the bundle, probe
memory, first selection with sha256 validation of the chosen file, later selections) for each backend; medians.

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


NATIVE_EXECUTORCH = Path(next(iter(executorch.__path__))) / "share" / "cmake"
AARCH64_EXECUTORCH = ROOT / ".venv" / "aarch64" / "executorch" / "share" / "cmake"
AARCH64_TOOLCHAIN = ROOT / "runtime_shim" / "cmake" / "aarch64-linux-gnu.cmake"
AARCH64_LITERT = ROOT / ".venv" / "aarch64" / "ai_edge_litert" / "libLiteRt.so"
CPUINFO_CORTEX_A53 = ROOT / "runtime_shim" / "tests" / "fixtures" / "cpuinfo" / "cortex-a53"


def emulated(cross_dir: Path) -> list[str | Path]:
    """qemu-user as a Cortex-A53 for binaries of the aarch64 build in ``cross_dir``, with an Arm /proc/cpuinfo
    for libLiteRt.so (``runtime_shim/tests/cpuinfo_redirect.c``), as the test suite runs them."""
    return [
        "qemu-aarch64-static", "-cpu", "cortex-a53", "-L", "/usr/aarch64-linux-gnu",
        "-E", f"LD_PRELOAD={cross_dir / 'tests' / 'cpuinfo_redirect.so'}", "-E", f"RS_CPUINFO={CPUINFO_CORTEX_A53}",
    ]  # fmt: skip


def build(build_dir: Path, executorch_package: Path, *options: str) -> None:
    options = (
        "-DCMAKE_BUILD_TYPE=Release",
        "-DRS_WITH_EXECUTORCH=ON",
        f"-Dexecutorch_DIR={executorch_package}",
        *options,
    )
    subprocess.run(["cmake", "-S", ROOT / "runtime_shim", "-B", build_dir, *options], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", build_dir, "-j2"], check=True, capture_output=True)


def stripped_sizes(build_dir: Path, scratch: Path, tools: str) -> dict[str, dict[str, int]]:
    """Per library: the stripped file's bytes, and its code + data (text + data + bss, as ``size`` counts).

    The two differ on aarch64, whose linker pads segments to 64 KiB pages in the file (not in memory).
    """
    scratch.mkdir()
    sizes = {}
    for name, library in LIBRARIES.items():
        copy = scratch / library
        shutil.copy(build_dir / library, copy)
        subprocess.run([f"{tools}strip", "--strip-unneeded", copy], check=True)
        berkeley = subprocess.run([f"{tools}size", copy], check=True, capture_output=True, text=True).stdout
        sizes[name] = {"file": copy.stat().st_size, "code_and_data": int(berkeley.splitlines()[1].split()[3])}
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "dist" / "cortex-a53")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_dir, cross_dir = Path(tmp) / "build", Path(tmp) / "build-aarch64"
        build(build_dir, NATIVE_EXECUTORCH)
        build(cross_dir, AARCH64_EXECUTORCH, f"-DCMAKE_TOOLCHAIN_FILE={AARCH64_TOOLCHAIN}")
        sizes = {
            platform.machine(): stripped_sizes(build_dir, Path(tmp) / "stripped", ""),
            "aarch64 (cortex-a53)": stripped_sizes(cross_dir, Path(tmp) / "stripped-aarch64", "aarch64-linux-gnu-"),
        }
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

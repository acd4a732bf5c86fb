"""Issue 17's goal that the cold demo build grow by no more than 20%: the build with and without bias correction.

Bias correction is the one int8 stage issue 17 added that costs build time (its other levers, lean graphs and
observer placement, change what is lowered, not how long: ``int8_levers.py`` times the lowering of each). This
runs ``restnetc build --target T`` twice, cold (an empty cache each), one after the other: as shipped, and with
bias correction switched off in every process of the build (``build_growth_hook/sitecustomize.py``, on
``PYTHONPATH``), where the accuracy policy then finds more artifacts beyond tolerance and screens and lowers
keep-float candidates for them. Reports each build's wall seconds, the process seconds spent in bias correction's
two passes (summed over the build's processes: two run at a time on a 2-core machine), the keep-float
candidates the policy lowered and its accuracy warnings.

Usage: ``.venv/bin/python benchmarks/build_growth.py [--target targets/cortex-a53.yaml] [--work DIR]``. Run it on
an otherwise idle machine: it times whole builds. Writes ``benchmarks/results/build_growth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

HOOK = Path(__file__).parent / "build_growth_hook"
ARMS = {"shipped": {}, "without-bias-correction": {"BUILD_GROWTH_NO_BIAS_CORRECTION": "1"}}
"""Each build's name and the environment that makes it."""


def _build(target: Path, work: Path, extra: dict[str, str]) -> dict[str, object]:
    """One cold build of ``target`` under ``work``: its figures."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "bias_correction.log"
    env = {
        **os.environ,
        **extra,
        "RESTNETC_CACHE": str(work / "cache"),
        "BUILD_GROWTH_LOG": str(log),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])),
    }
    command = [str(common.RESTNETC), "build", "--target", str(target), "--out", str(work / "bundle")]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"build failed ({result.returncode}):\n{result.stderr[-2000:]}")
    spent: Counter[str] = Counter()
    for line in log.read_text().splitlines() if log.exists() else []:
        _, name, took = line.split()
        spent[name] += float(took)
    lines = result.stderr.splitlines()
    return {
        "wall_s": round(seconds, 1),
        "bias_correction_process_s": {name: round(s, 1) for name, s in sorted(spent.items())},
        "keep_float_candidates": sum(" keep-float " in line and "validation top-1" in line for line in lines),
        "accuracy_warnings": sum("ACCURACY WARNING" in line for line in lines),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--work", type=Path, default=common.ROOT / "build" / "build_growth")
    args = parser.parse_args()
    rows = []
    for arm, extra in ARMS.items():
        row = {"arm": arm, **_build(args.target.resolve(), args.work / arm, extra)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    common.store_rows("build_growth", {"target": str(args.target)}, rows, "arm")


if __name__ == "__main__":
    main()

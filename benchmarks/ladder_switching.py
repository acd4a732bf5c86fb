"""Switching rungs in the shim: one ladder program per backend against one file per rung, side by side.

Takes two bundles of the same target built from the same cache, one with ``bundle: {layout: per-rung}`` and one
with ``bundle: {layout: ladder}``, and measures through the C runner (``restnetc.runtime``) what issue 16 sets
goals for, per backend:

- bytes: the ladder file against the sum of the per-rung files (goal <= 0.5) and the two parents' (<= 1.15);
- first switch to a rung not yet loaded (``Runner.use``): from the open ladder program, against loading the
  rung's own file from scratch (read, verify, open, load); goal: at most 0.2 x;
- switching between two loaded rungs (``use`` of a resident rung, and the first forward pass after it) against
  one forward pass of the smaller rung; goal: at most one forward pass;
- resident memory (growth of a fresh process: RSS, plus the pages of in-memory files not mapped resident, where
  LiteRT keeps the packed weights of its in-memory weight cache until a run touches them) with every rung of
  the ladder loaded, against the two parents loaded from their per-rung files; goal: at most 1.1 x (with packed
  weights shared, the runner's default, and not shared); and the same once every rung has run (``ran``: what
  runtimes allocate on a first run, activation arenas and workspaces, counted too).

Timings are medians of ``--repeats`` trials, the two layouts measured alternately in one run.

Usage: ``.venv/bin/python benchmarks/ladder_switching.py --per-rung DIR --ladder DIR
[--executorch-library build/librestnet_shim_executorch.so]``. Writes ``benchmarks/results/ladder_switching.json``.
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
from typing import Any

import numpy as np

from restnetc.atomic import write_text_atomic
from restnetc.bundle.manifest import read_manifest
from restnetc.bundle.runtime_index import memory_need
from restnetc.runtime import Bundle, Runner

RESULTS = Path(__file__).parent / "results" / "ladder_switching.json"

RSS_PROBE = """
import os
import sys
import numpy as np
from restnetc.runtime import Bundle, PackingPolicy, Runner
def rss():
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * 4096
    files = {}  # in-memory files by inode (LiteRT's packed weights): their pages are memory, mapped or not
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:"):
                status = os.fstat(int(fd))
                files[status.st_ino] = status.st_blocks * 512
        except OSError:
            continue
    mapped, inode = dict.fromkeys(files, 0), None  # of each, what is mapped resident (in statm already)
    with open("/proc/self/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                inode = int(fields[4]) if "/memfd:" in line else None
            elif inode in mapped and fields[0] == "Rss:":
                mapped[inode] += int(fields[1]) * 1024
    return resident + sum(max(files[i] - mapped[i], 0) for i in files)
bundle, backend, root, library, share, ran, ids = *sys.argv[1:7], sys.argv[7:]
options = {"executorch_library": library} if backend == "executorch" else {}
options["packing"] = PackingPolicy.SHARED if share == "1" else PackingPolicy.OWN
with Bundle(bundle) as opened:
    image = np.zeros(opened.input_shape, dtype=np.float32)
    before = rss()
    with Runner(opened, backend, memory_root=root, override=ids[0], **options) as runner:
        for variant in ids[1:]:
            runner.preload(variant)
        for variant in ids if ran == "1" else []:
            runner.use(variant)
            runner.run(image)
        print(rss() - before)
"""


def _median_ms(trials: list[float]) -> float:
    return round(1000 * statistics.median(trials), 4)


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


class Setup:
    """One backend's artifacts in both bundles, and how to open a runner on either."""

    def __init__(self, args: argparse.Namespace, backend: str, root: Path) -> None:
        self.backend, self.root, self.args = backend, root, args
        self.options: dict[str, Any] = (
            {"executorch_library": args.executorch_library} if backend == "executorch" else {}
        )
        self.per_rung = [a for a in read_manifest(args.per_rung).artifacts if a.backend == backend]
        self.ladder = [a for a in read_manifest(args.ladder).artifacts if a.backend == backend]
        assert [a.id for a in self.per_rung] == [a.id for a in self.ladder], "the bundles hold different rungs"
        assert len({a.file for a in self.ladder}) == 1, f"{args.ladder}: not a ladder bundle for {backend}"
        self.parents = [a.id for a in self.per_rung if a.role == "parent"]
        assert len(self.parents) == 2, f"{args.per_rung}: both parents must ship"

    def runner(self, bundle: Bundle, first: str) -> Runner:
        return Runner(bundle, self.backend, memory_root=self.root, override=first, **self.options)

    def rss(self, directory: Path, ids: list[str], share: bool = True, ran: bool = False) -> int:
        """Memory growth (``RSS_PROBE``) of a fresh process that loads ``ids`` from ``directory`` (``share``: packed
        weights) and, with ``ran``, runs each once (activation memory and workspaces are allocated on a first run),
        the median of three processes."""
        library = str(self.args.executorch_library or "")
        where = (str(directory), self.backend, str(self.root), library, str(int(share)), str(int(ran)))
        command = [sys.executable, "-c", RSS_PROBE, *where, *ids]
        runs = [subprocess.run(command, check=True, capture_output=True, text=True) for _ in range(3)]
        return int(statistics.median(int(run.stdout.split()[-1]) for run in runs))


def _bytes(setup: Setup) -> dict[str, object]:
    per_rung = {a.id: (setup.args.per_rung / a.file).stat().st_size for a in setup.per_rung}
    parents = setup.parents
    program = (setup.args.ladder / setup.ladder[0].file).stat().st_size
    return {
        "ladder_bytes": program,
        "per_rung_bytes": sum(per_rung.values()),
        "parents_bytes": sum(per_rung[p] for p in parents),
        "ladder_over_per_rung": round(program / sum(per_rung.values()), 3),
        "ladder_over_parents": round(program / sum(per_rung[p] for p in parents), 3),
    }


def _first_switch(setup: Setup, repeats: int) -> dict[str, object]:
    """Per rung: ``use`` of a rung not loaded, from the open ladder program and from its own file."""
    first, others = setup.ladder[0].id, [a.id for a in setup.ladder[1:]]
    trials: dict[str, dict[str, list[float]]] = {r: {"ladder": [], "per_rung": []} for r in others}
    with Bundle(setup.args.ladder) as ladder, Bundle(setup.args.per_rung) as per_rung:
        for _ in range(repeats):
            for rung in others:
                for layout, bundle in (("ladder", ladder), ("per_rung", per_rung)):
                    with setup.runner(bundle, first) as runner:
                        trials[rung][layout].append(_timed(lambda r=runner, i=rung: r.use(i)))
    rungs = {
        rung: {
            "ladder_ms": _median_ms(t["ladder"]),
            "per_rung_ms": _median_ms(t["per_rung"]),
            "ratio": round(statistics.median(t["ladder"]) / statistics.median(t["per_rung"]), 3),
        }
        for rung, t in trials.items()
    }
    return {"rungs": rungs, "worst_ratio": max(r["ratio"] for r in rungs.values())}


def _loaded_switch(setup: Setup, repeats: int, runs: int) -> dict[str, object]:
    """Between the smallest and the largest rung, both loaded: ``use`` alone, and the forward pass after it."""
    by_memory = sorted(setup.ladder, key=memory_need)
    small, large = by_memory[0], by_memory[-1]
    with Bundle(setup.args.ladder) as ladder, setup.runner(ladder, small.id) as runner:
        runner.preload(large.id)
        image = np.zeros(ladder.input_shape, dtype=np.float32)
        steady, use, after = [], [], []
        for _ in range(repeats):
            runner.use(small.id)
            runner.run(image)
            steady += [_timed(lambda: runner.run(image)) for _ in range(runs)]
            for rung in (large.id, small.id) * runs:
                use.append(_timed(lambda i=rung: runner.use(i)))
                after.append(_timed(lambda: runner.run(image)))
    forward = statistics.median(steady)
    return {
        "small": small.id,
        "large": large.id,
        "small_forward_ms": _median_ms(steady),
        "use_ms": _median_ms(use),
        "first_forward_after_switch_ms": _median_ms(after),
        "use_over_small_forward": round(statistics.median(use) / forward, 4),
    }


def _resident(setup: Setup) -> dict[str, object]:
    """Every rung of the ladder loaded against the two parents from their own files, and the ladder again with
    packed weights not shared (``PackingPolicy.OWN``: nothing to share between the parents' two files)."""
    rungs = [a.id for a in setup.ladder]
    every = setup.rss(setup.args.ladder, rungs)
    two_parents = setup.rss(setup.args.per_rung, setup.parents)
    figures: dict[str, object] = {
        "every_rung_of_ladder_bytes": every,
        "two_parents_per_rung_bytes": two_parents,
        "ratio": round(every / two_parents, 3),
    }
    unshared = setup.rss(setup.args.ladder, rungs, share=False)
    every_ran = setup.rss(setup.args.ladder, rungs, ran=True)
    two_parents_ran = setup.rss(setup.args.per_rung, setup.parents, ran=True)
    return figures | {
        "every_rung_unshared_bytes": unshared,
        "unshared_ratio": round(unshared / two_parents, 3),
        "every_rung_ran_bytes": every_ran,
        "two_parents_ran_bytes": two_parents_ran,
        "ran_ratio": round(every_ran / two_parents_ran, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-rung", type=Path, required=True)
    parser.add_argument("--ladder", type=Path, required=True)
    parser.add_argument("--executorch-library", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    backends = ["litert"] + (["executorch"] if args.executorch_library else [])
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "proc").mkdir()
        (root / "proc" / "meminfo").write_text("MemAvailable: 64000000 kB\n")
        for backend in backends:
            setup = Setup(args, backend, root)
            figures[backend] = {
                "rungs": len(setup.ladder),
                "bytes": _bytes(setup),
                "first_switch": _first_switch(setup, args.repeats),
                "loaded_switch": _loaded_switch(setup, args.repeats, args.runs),
                "resident": _resident(setup),
            }
            print(backend, json.dumps(figures[backend], indent=1))
    write_text_atomic(RESULTS, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

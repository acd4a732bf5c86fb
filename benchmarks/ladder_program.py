"""How small is one program holding the whole demo ladder, against one file per rung?

Runs the demo's search (from ``--cache-dir``: a ``restnetc build`` of the same target with the same cache makes
it instant), quantizes every rung of the ladder as a build does (PT2E int8, the target's calibration images, no
float islands, a variant's back part taking its back parent's quantization: ``lowering.Graphs``), and lowers them
per backend twice: one file per rung (``compile``) and one program with an entry point per rung
(``compile_program``). Reports the bytes of both, the ratios issue 16 sets goals for (program / sum of per-rung
files <= 0.5; program / the two parents' files <= 1.15), and checks on ``--images`` test images that every entry
point's logits equal its rung's own file's, bit for bit.

Usage: ``.venv/bin/python benchmarks/ladder_program.py [--target targets/cortex-a53.yaml] [--cache-dir DIR]``.
Writes ``benchmarks/results/ladder_program.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.bundle.ladder import ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.bundle.packing import entry_point_name
from restnetc.cache import Cache, default_cache_dir
from restnetc.config.loader import load_project, load_target
from restnetc.native_output import captured
from restnetc.pipeline.search import run_search

RESULTS = Path(__file__).parent / "results" / "ladder_program.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--images", type=int, default=64)
    args = parser.parse_args()
    target = load_target(args.target)
    project, _ = load_project(None)
    search = run_search(project, target, Cache(args.cache_dir or default_cache_dir()), build=True)
    rungs = ladder(search)
    entry = {rung.id: entry_point_name(rung.id) for rung in rungs}
    calibration = search.train.images[: target.runtime.calibration_images]
    images = search.test.images[: args.images].numpy()
    parents = [entry[rung.id] for rung in rungs if rung.role == "parent"]
    figures: dict[str, dict[str, object]] = {}
    for name in target.runtime.backends:
        backend = get_backend(name)
        start = time.perf_counter()
        with captured():
            quantized = {entry[r.id]: Graphs(r, backend, Observations.uncached(calibration)).int8(()) for r in rungs}
            graphs = {rung_id: graph for rung_id, (graph, _) in quantized.items()}
            quantizer = backend.int8_quantizer()
            program = backend.compile_program(graphs, calibration[:1], quantizer)
            example = calibration[:1]
            separate = {rung_id: backend.compile(graph, example, q) for rung_id, (graph, q) in quantized.items()}
        seconds = time.perf_counter() - start
        identical = {}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"ladder{backend.suffix}"
            path.write_bytes(program.data)
            for rung_id, lowered in separate.items():
                own = Path(tmp) / f"{rung_id}{backend.suffix}"
                own.write_bytes(lowered.data)
                expected = backend.runtime.load(own, 1)(images)
                identical[rung_id] = bool(np.array_equal(backend.runtime.load(path, 1, rung_id)(images), expected))
        per_rung = {rung_id: len(lowered.data) for rung_id, lowered in separate.items()}
        total, parent_bytes = sum(per_rung.values()), sum(per_rung[p] for p in parents)
        figures[name.value] = {
            "program_bytes": len(program.data),
            "per_rung_bytes": per_rung,
            "per_rung_total": total,
            "program_over_per_rung_total": round(len(program.data) / total, 4),
            "program_over_parents": round(len(program.data) / parent_bytes, 4),
            "entry_points_identical_to_own_files": identical,
            "lowering_seconds_both_layouts": round(seconds, 1),
        }
        print(name.value, json.dumps(figures[name.value], indent=1))
    report = {"target": target.name, "rungs": list(entry.values()), "backends": figures}
    write_text_atomic(RESULTS, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

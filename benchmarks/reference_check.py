"""How far apart are sound and mis-lowered int8 programs from what they were compiled from? The build's check.

A build stops on an artifact whose logits, on the validation split's first ``SCREENING_IMAGES`` images, do not
point where its PT2E simulation's do (``verification.Reference``: mean cosine at least ``REFERENCE_MIN_COSINE``).
This runs a pair's search (``--pair``: a zoo pair on Table I's target, or the demo on ``--target``), quantizes every
rung for each backend as a build does (``lowering.Graphs``: the backend's quantizer, the target's calibration images,
the back parent's quantization on shared modules, bias correction, no float islands), compiles it and runs it in its
runtime, and reports mean and smallest cosine and top-1 agreement against the simulation: ``sound`` as shipped, and
for ExecuTorch ``shared-bias`` (``executorch._own_biases`` switched off: a bias two layers share is stored once,
scaled for the first reader, the fault the check was built after).

Usage: ``.venv/bin/python benchmarks/reference_check.py [--pair deits-deitti|demo|...] [--rungs ...]``. Writes
``benchmarks/results/reference_check.json``, keeping the stored rows of (pair, rung, backend, way) not run again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.backends import executorch, get_backend
from restnetc.bundle.ladder import ladder
from restnetc.bundle.lowering import Graphs, Observations, simulated_logits
from restnetc.bundle.screening import SCREENING_IMAGES
from restnetc.bundle.verification import REFERENCE_MIN_COSINE, Reference
from restnetc.cache import Cache, default_cache_dir
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.pipeline.search import run_search

WAYS = {
    "sound": contextlib.nullcontext,
    "shared-bias": lambda: mock.patch.object(executorch, "_own_biases", lambda graph: graph),
}
"""Each way's name, and the context its program is compiled in."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_pair_arguments(parser)
    parser.set_defaults(pair="deits-deitti")
    parser.add_argument("--rungs", nargs="+", help="rung ids (default: every rung)")
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    project, target = common.pair_setup(args)
    search = run_search(project, target, Cache(args.cache_dir or default_cache_dir()), build=True)
    calibration = search.train.images[: target.runtime.calibration_images]
    images = search.validation.images[:SCREENING_IMAGES]
    rows: list[dict[str, object]] = []
    for name in target.runtime.backends:
        backend = get_backend(name)
        ways = list(WAYS) if name is BackendName.EXECUTORCH else ["sound"]
        for rung in (r for r in ladder(search) if args.rungs is None or r.id in args.rungs):
            graph, quantizer = Graphs(rung, backend, Observations.uncached(calibration)).int8(())
            reference = Reference(simulated_logits(graph, images), "simulation")
            for way in ways:
                with tempfile.TemporaryDirectory(prefix="reference-check-") as work, captured():
                    path = Path(work) / f"{way}{backend.suffix}"
                    with WAYS[way]():
                        path.write_bytes(backend.compile(graph, calibration[:1], quantizer).data)
                    out = backend.runtime.load(path, 1)(images.numpy())
                cosine = reference.cosine(out)
                row = {
                    "run": f"{args.pair}/{rung.id}/{name.value}/{way}",
                    "pair": args.pair,
                    "rung": rung.id,
                    "backend": name.value,
                    "way": way,
                    "images": len(images),
                    "mean_cosine": round(cosine, 5),
                    "min_cosine": round(float(reference.cosines(out).min()), 5),
                    "top1_agreement": round(reference.agreement(out), 2),
                    "passes": cosine >= REFERENCE_MIN_COSINE,
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    common.store_rows("reference_check", {"bound": REFERENCE_MIN_COSINE, "images": SCREENING_IMAGES}, rows, "run")


if __name__ == "__main__":
    main()

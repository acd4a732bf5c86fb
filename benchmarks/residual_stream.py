"""What does leaving a transformer's residual stream in float buy its int8 rungs?

Both backends' quantizers annotate every add, so without ``pt2e.float_residual_streams`` a ViT's residual stream
is rounded to int8 at every block only for LayerNorm to read it back in float. This runs a pair's search
(``--pair``: a zoo pair on Table I's target, or the demo on ``--target``; from ``--cache-dir``: a build of the same
target with that cache makes it instant) and, for every rung and backend, lowers int8 as a build does (the
backend's PT2E quantizer, the target's calibration images, the back parent's quantization on shared modules, bias
correction, no float islands) three ways: ``stream`` (as shipped: every add LayerNorm reads in float, and every add
onto one of those, such as a truncated front's last add that a stitch reads), ``layernorm-read`` (only the adds
LayerNorm reads, the rule before the stitch's input joined it) and ``rounded`` (the rule switched off). Each way is
scored simulated in PyTorch and in its runtime, on validation and test; the rows hold top-1 for eager fp32 and each
way, and on test the paired differences in the runtime (each way minus eager fp32; stream minus each other way)
with 95% intervals and McNemar p. The three programs and the rung's fp32 program are timed side by side
(``--threads`` threads, ``--rounds`` interleaved rounds of ``--runs`` calls, the median round; each program open alone
while timed).

Usage: ``.venv/bin/python benchmarks/residual_stream.py [--pair deits-deitti|...] [--validation-images N]
[--test-images N] [--backends ...] [--rungs ...] [--threads 2] [--rounds 7] [--runs 20] [--cache-dir DIR]``. Writes
``benchmarks/results/residual_stream.json``, keeping the stored rows of (pair, rung, backend) not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from int8_speed import interleaved_medians
from restnetc.backends import get_backend, pt2e
from restnetc.budget.measure import Opener, TimedEntry, opener
from restnetc.bundle.ladder import ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache, default_cache_dir
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.pipeline.search import run_search


def _layernorm_read(model: torch.fx.GraphModule) -> None:
    """The ``layernorm-read`` way: only the adds a LayerNorm reads directly are left in float."""
    for node in model.graph.nodes:
        if pt2e.read_by_layernorm(node):
            node.meta.pop("quantization_annotation", None)


WAYS: dict[str, Callable[[torch.fx.GraphModule], None]] = {
    "stream": pt2e.float_residual_streams,
    "layernorm-read": _layernorm_read,
    "rounded": lambda model: None,
}
"""Each way's name, and what it puts in the place of ``pt2e.float_residual_streams``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_pair_arguments(parser, test_images=10000)
    parser.set_defaults(pair="deits-deitti")
    parser.add_argument("--backends", nargs="+", type=BackendName, help="default: the target's")
    parser.add_argument("--rungs", nargs="+", help="rung ids (default: every rung)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    project, target = common.pair_setup(args)
    search = run_search(project, target, Cache(args.cache_dir or default_cache_dir()), build=True)
    calibration = search.train.images[: target.runtime.calibration_images]
    splits = {"validation": search.validation, "test": search.test}
    example = calibration[:1]
    rows: list[dict[str, object]] = []
    for name in args.backends or target.runtime.backends:
        backend = get_backend(name)
        for rung in (r for r in ladder(search) if args.rungs is None or r.id in args.rungs):
            eager = {split: common.simulated_correct(rung.model.eval(), images) for split, images in splits.items()}
            simulated: dict[str, dict[str, torch.Tensor]] = {}
            runtime: dict[str, dict[str, np.ndarray]] = {}
            programs = {"fp32": (rung.model.eval(), None)}
            for way, rule in WAYS.items():
                with mock.patch.object(pt2e, "float_residual_streams", rule):
                    programs[way] = Graphs(rung, backend, Observations.uncached(calibration)).int8(())
                simulated[way] = {split: common.simulated_correct(programs[way][0], im) for split, im in splits.items()}
            with tempfile.TemporaryDirectory(prefix="residual-stream-") as work:
                calls: dict[str, Opener] = {}
                for way, (graph, quantizer) in programs.items():
                    path = Path(work) / f"{way}{backend.suffix}"
                    with captured():
                        path.write_bytes(backend.compile(graph, example, quantizer).data)
                    if way in WAYS:
                        runtime[way] = {
                            split: common.runtime_correct(backend, path, args.threads, im.images, im.labels)
                            for split, im in splits.items()
                        }
                    calls[way] = opener(TimedEntry(name.value, path, example.numpy()), args.threads)
                median = interleaved_medians(calls, args.rounds, args.runs)
            test = {way: scores["test"] for way, scores in runtime.items()}
            row = {
                "run": f"{args.pair}/{rung.id}/{name.value}",
                "pair": args.pair,
                "rung": rung.id,
                "backend": name.value,
                "images": {split: len(images.labels) for split, images in splits.items()},
                **{f"eager_{split}": common.top1(c) for split, c in eager.items()},
                **{
                    f"{way}_simulated_{split}": common.top1(c)
                    for way, scores in simulated.items()
                    for split, c in scores.items()
                },
                **{
                    f"{way}_runtime_{split}": common.top1(torch.from_numpy(c))
                    for way, scores in runtime.items()
                    for split, c in scores.items()
                },
                **{f"{way}_minus_eager": common.paired(test[way], eager["test"].numpy()) for way in WAYS},
                **{f"stream_minus_{way}": common.paired(test["stream"], test[way]) for way in WAYS if way != "stream"},
                "median_ms": {way: round(ms, 4) for way, ms in median.items()},
                "over_fp32_time": {way: round(median[way] / median["fp32"], 3) for way in WAYS},
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    settings = {"test_images": args.test_images, "ways": list(WAYS), "scored": "simulated and runtime"}
    common.store_rows("residual_stream", settings, rows, "run")


if __name__ == "__main__":
    main()

"""What does leaving a transformer's residual stream in float buy its int8 rungs?

Both backends' quantizers annotate every add, so without ``pt2e.float_residual_streams`` a ViT's residual stream
is rounded to int8 at every block only for LayerNorm to read it back in float. This runs a pair's search
(``--pair``: a zoo pair on Table I's target, or the demo on ``--target``; from ``--cache-dir``: a build of the same
target with that cache makes it instant) and, for every rung and backend, simulates int8 in eager PyTorch as a
build lowers it (the backend's PT2E quantizer, the target's calibration images, the back parent's quantization on
shared modules, bias correction, no float islands) both ways: the stream left in float (as shipped) and rounded
(the rule switched off). Reports top-1 on validation and test for eager fp32 and both ways, and on test the paired
differences (each way minus eager fp32, float minus rounded) with 95% intervals and McNemar p. Each way's graph and
the rung's fp32 model are then compiled, and their bare invocations timed side by side (``--threads`` threads,
``--rounds`` interleaved rounds of ``--runs`` calls, the median round; only the rung's three programs loaded).

Usage: ``.venv/bin/python benchmarks/residual_stream.py [--pair deits-deitti|...] [--validation-images N]
[--test-images N] [--backends ...] [--rungs ...] [--threads 2] [--rounds 7] [--runs 20] [--cache-dir DIR]``. Writes
``benchmarks/results/residual_stream.json``, keeping the stored rows of (pair, rung, backend) not run again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from int8_speed import interleaved_medians
from restnetc.backends import get_backend, pt2e
from restnetc.backends.native_output import captured
from restnetc.bundle.ladder import ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache, default_cache_dir
from restnetc.config.target import Backend as BackendName
from restnetc.data import ImageSet
from restnetc.pipeline.search import run_search

WAYS = {"float": False, "rounded": True}
"""Each way's name, and whether ``pt2e.float_residual_streams`` is switched off for it."""


def _scored(model: torch.nn.Module, splits: Mapping[str, ImageSet]) -> dict[str, torch.Tensor]:
    """Per split, each image's correctness under ``model``."""
    return {split: common.simulated_correct(model, images) for split, images in splits.items()}


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
            correct = {
                "eager": {
                    split: common.simulated_correct(rung.model.eval(), images) for split, images in splits.items()
                }
            }
            programs = {"fp32": (rung.model.eval(), None)}
            for way, off in WAYS.items():
                switch = mock.patch.object(pt2e, "float_residual_streams", lambda model: None)
                with switch if off else contextlib.nullcontext():
                    programs[way] = Graphs(rung, backend, Observations.uncached(calibration)).int8(())
                correct[way] = {
                    split: common.simulated_correct(programs[way][0], images) for split, images in splits.items()
                }
            with tempfile.TemporaryDirectory(prefix="residual-stream-") as work:
                calls: dict[str, Callable[[], object]] = {}
                for way, (graph, quantizer) in programs.items():
                    path = Path(work) / f"{way}{backend.suffix}"
                    with captured():
                        path.write_bytes(backend.compile(graph, example, quantizer).data)
                    calls[way] = backend.invoker(path, args.threads, example.numpy())
                median = interleaved_medians(calls, args.rounds, args.runs)
                del calls
            test = {way: scores["test"].numpy() for way, scores in correct.items()}
            row = {
                "run": f"{args.pair}/{rung.id}/{name.value}",
                "pair": args.pair,
                "rung": rung.id,
                "backend": name.value,
                "images": {split: len(images.labels) for split, images in splits.items()},
                **{f"{way}_{split}": common.top1(c) for way, scores in correct.items() for split, c in scores.items()},
                "float_minus_eager": common.paired(test["float"], test["eager"]),
                "rounded_minus_eager": common.paired(test["rounded"], test["eager"]),
                "float_minus_rounded": common.paired(test["float"], test["rounded"]),
                "median_ms": {way: round(ms, 4) for way, ms in median.items()},
                "over_fp32_time": {way: round(median[way] / median["fp32"], 3) for way in WAYS},
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    common.store_rows("residual_stream", {"test_images": args.test_images}, rows, "run")


if __name__ == "__main__":
    main()

"""What does a stitched rung lose when its back part takes its back parent's quantization?

A build calibrates a stitched rung with its back parent as donor (``pt2e.observe``): every value computed in the
blocks and head it shares with the parent, and the stitching layer's output entering them, takes the parent's
quantization parameters, so those blocks quantize to the parent's very bytes and a ladder program (and XNNPACK's
weight cache) holds them once. This runs a pair's
search (``--pair``: the demo on ``--target``, or a zoo pair on Table I's target; from ``--cache-dir``: a build of
the same target with that cache makes it instant) and, for every stitched rung and backend, simulates int8 in
eager PyTorch (the backend's own PT2E quantizer, the target's calibration images, bias correction, no float
islands) both ways: calibrated alone, and with the donor. Reports top-1 on the validation and the test images
for both, and on test the paired difference (donor minus alone) with its 95% interval and McNemar p.

Usage: ``.venv/bin/python benchmarks/shared_quantization.py [--pair demo|deits-deitti|...] [--target
targets/cortex-a53.yaml] [--validation-images N] [--test-images N] [--cache-dir DIR]``. Writes
``benchmarks/results/shared_quantization.json``, keeping the stored rows of pairs not run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.backends import get_backend
from restnetc.bundle.ladder import Rung, ladder
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache, default_cache_dir
from restnetc.evaluation import compare_paired
from restnetc.pipeline.search import run_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_pair_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    project, target = common.pair_setup(args)
    search = run_search(project, target, Cache(args.cache_dir or default_cache_dir()), build=True)
    calibration = search.train.images[: target.runtime.calibration_images]
    rows: list[dict[str, object]] = []
    stitched = [rung for rung in ladder(search) if rung.donor is not None]
    for name in target.runtime.backends:
        backend = get_backend(name)
        for rung in stitched:
            ways: dict[str, Rung] = {"alone": dataclasses.replace(rung, donor=None), "donor": rung}
            observations = Observations.uncached(calibration)
            graphs = {way: Graphs(r, backend, observations).int8(())[0] for way, r in ways.items()}
            splits = {"validation": search.validation, "test": search.test}
            correct = {
                way: {split: common.simulated_correct(graph, images) for split, images in splits.items()}
                for way, graph in graphs.items()
            }
            paired = compare_paired(correct["donor"]["test"].numpy(), correct["alone"]["test"].numpy())
            row = {
                "pair": args.pair,
                "rung": rung.id,
                "backend": name.value,
                "images": {split: len(images.labels) for split, images in splits.items()},
                **{f"{way}_{split}": common.top1(c) for way, scores in correct.items() for split, c in scores.items()},
                "test_difference": round(paired.difference, 2),
                "test_interval": [round(v, 2) for v in paired.interval],
                "test_p_value": round(paired.p_value, 4),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    common.store_rows("shared_quantization", {}, rows, "pair")


if __name__ == "__main__":
    main()

"""What bias correction buys int8: the demo's two parents, simulated int8 with and without it, against fp32.

Builds the demo project's parents with their task heads (``load_parents``: the demo's shipped parents, from
``--cache-dir`` or trained afresh), quantizes each with the backend's quantizer, calibrated on the target's count
of real training images with no float islands, and converts it twice from the same calibrated observers: plainly,
and as restnetc does (``backends.bias_correction``, on the first ``BIAS_IMAGES`` calibration images). Both run in
eager PyTorch with int8 simulated, which is the graph each backend compiles. Reports each one's top-1 minus eager
fp32 on the validation and test splits, and corrected minus plain, paired (Newcombe 95% interval, exact McNemar p).

Usage: ``.venv/bin/python benchmarks/bias_correction.py [--target targets/cortex-a53.yaml] [--backend executorch]
[--cache-dir C]``. Writes ``benchmarks/results/bias_correction.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend
from restnetc.backends.pt2e import export_batched, observe
from restnetc.cache import Cache
from restnetc.config.loader import load_project, load_target
from restnetc.config.target import Backend
from restnetc.data import load_splits
from restnetc.native_output import captured
from restnetc.pipeline.parents import load_parents

RESULTS = Path(__file__).parent / "results" / "bias_correction.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"))
    parser.add_argument("--backend", type=Backend, default=Backend.EXECUTORCH)
    parser.add_argument("--cache-dir", type=Path, help="a build cache holding the demo's task heads")
    args = parser.parse_args()
    target = load_target(args.target)
    project, _ = load_project(None)
    splits = load_splits(project.data, project.seed)
    calibration = splits.train.images[: target.runtime.calibration_images]
    sets = {"validation": splits.validation, "test": splits.test}
    backend = get_backend(args.backend)
    rows: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for parent in load_parents(project, splits.train, Cache(args.cache_dir or Path(tmp) / "cache")):
            model = parent.model.eval()
            with captured(), torch.no_grad():
                exported = export_batched(model, calibration)
                observed = observe(exported, backend.int8_quantizer(), calibration)
                graphs = {
                    "plain": convert_pt2e(copy.deepcopy(observed.graph), fold_quantize=False),
                    "corrected": backend.quantize(exported, calibration, (), observed)[0],
                }
            row: dict[str, object] = {}
            for split, images in sets.items():
                labels = images.labels.numpy()
                with torch.no_grad():  # (an exported graph refuses .eval(); all three are in eval mode)
                    correct = {
                        name: torch.cat([graph(x) for x in images.images.split(256)]).argmax(1).numpy() == labels
                        for name, graph in {"fp32": model, **graphs}.items()
                    }
                row[split] = {
                    "images": len(labels),
                    "plain_minus_fp32": common.paired(correct["plain"], correct["fp32"]),
                    "corrected_minus_fp32": common.paired(correct["corrected"], correct["fp32"]),
                    "corrected_minus_plain": common.paired(correct["corrected"], correct["plain"]),
                }
                print(parent.name, split, json.dumps(row[split]), flush=True)
            rows[parent.name] = row
    result = {"backend": args.backend.value, "calibration_images": len(calibration), "parents": rows}
    write_text_atomic(RESULTS, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

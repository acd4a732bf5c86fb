"""Does the int8 simulation that screening scores predict the real artifact? Every model family, both runtimes.

Issue 17 asks that the simulated top-1 (the PT2E graph each backend compiles, run in eager PyTorch: what the
accuracy policy's screening scores) predict the real artifact's within 0.3 points for every family. For each
registered family one trained model is quantized as a build quantizes a parent (``Backend.quantize``: the
backend's quantizer, ``--calibration`` real training images, bias correction, no float islands), simulated on
``--images`` Fashion-MNIST test images, compiled (``Backend.compile``) and run in its runtime on the same images.
Reports both top-1 figures, runtime minus simulation paired (Newcombe 95% interval, exact McNemar p), and how
often the two disagree on top-1. The models: the zoo's checkpoints (``benchmarks/zoo``, 32 px) for ResNet, VGG,
ViT (DeiT) and Swin, the demo's fine-tuned parents (64 px) for EfficientNet-Lite; a family registered without a
model here stops the script.

Usage: ``.venv/bin/python benchmarks/simulation_gap.py [--models ...] [--images 10000] [--cache-dir C]``.
Writes ``benchmarks/results/simulation_gap.{json,md}``, keeping the stored rows of models not run again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.backends import get_backend, list_backends
from restnetc.backends.pt2e import export_batched
from restnetc.cache import Cache
from restnetc.config.project import FashionMnistData, Normalization, TimmModel
from restnetc.data import load_splits
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import ImageSet, pick
from restnetc.models import list_families
from restnetc.models.factory import build_model
from restnetc.models.zoo import IMAGE_SIZE
from restnetc.native_output import captured
from restnetc.pipeline.parents import load_parents

RESULTS = Path(__file__).parent / "results"
FASHION_MNIST: Path = FashionMnistData.model_fields["root"].default
ZOO_MODELS = {"zoo_resnet18": "resnet", "zoo_vgg11": "vgg", "zoo_deit_ti": "vit", "zoo_deit_s": "vit"}
ZOO_MODELS |= {"zoo_swin_ti": "swin"}
DEMO_MODELS = {"efficientnet-lite0": "efficientnet-lite", "efficientnet-lite2": "efficientnet-lite"}
"""Each model here and its family; every registered family has one."""


def _zoo(arch: str, count: int, calibration: int) -> tuple[nn.Module, torch.Tensor, ImageSet]:
    """Zoo model ``arch``, ``calibration`` training images and the first ``count`` test images, at 32 px."""
    spec = TimmModel.model_validate(common.zoo_model(arch))
    norm = Normalization.model_validate(common.zoo()["normalization"])
    train = load_fashion_mnist(FASHION_MNIST, "train", pick(calibration, 60000, 1), IMAGE_SIZE, norm)
    test = load_fashion_mnist(FASHION_MNIST, "test", pick(count, 10000, 0), IMAGE_SIZE, norm)
    return build_model(spec, IMAGE_SIZE), train.images, test


def _demo(name: str, count: int, calibration: int, cache: Cache) -> tuple[nn.Module, torch.Tensor, ImageSet]:
    """The demo's parent ``name`` with its task head, the demo's first ``calibration`` training images (as a build
    calibrates) and ``count`` test images."""
    project = common.demo({"test_images": count})
    splits = load_splits(project.data, project.seed)
    parent = next(parent for parent in load_parents(project, splits.train, cache) if parent.name == name)
    return parent.model, splits.train.images[:calibration], splits.test


def _logits(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model(batch) for batch in images.split(250)]).numpy()


def _rows(
    name: str, model: nn.Module, calibration: torch.Tensor, test: ImageSet, work: Path
) -> list[dict[str, object]]:
    labels, rows = test.labels.numpy(), []
    eager = _logits(model.eval(), test.images).argmax(1) == labels
    for backend in map(get_backend, list_backends()):
        start = time.perf_counter()
        with captured():
            graph, quantizer = backend.quantize(export_batched(model, calibration), calibration)
            simulated = _logits(graph, test.images).argmax(1)
            path = work / f"{name}{backend.suffix}"
            path.write_bytes(backend.compile(graph, calibration[:1], quantizer).data)
            real = backend.runtime.load(path, 1)(test.images.numpy()).argmax(1)
        row = {
            "model": name,
            "family": {**ZOO_MODELS, **DEMO_MODELS}[name],
            "backend": backend.name,
            "images": len(labels),
            "eager_fp32": round(100 * float(eager.mean()), 2),
            "simulated": round(100 * float((simulated == labels).mean()), 2),
            "runtime": round(100 * float((real == labels).mean()), 2),
            "runtime_minus_simulated": common.paired(real == labels, simulated == labels),
            "disagree_percent": round(100 * float((real != simulated).mean()), 2),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    models = {**ZOO_MODELS, **DEMO_MODELS}
    if missing := set(list_families()) - set(models.values()):
        raise SystemExit(f"no trained model here for the registered families {sorted(missing)}: add one to the script")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(models), default=sorted(models))
    parser.add_argument("--images", type=int, default=10000, help="test images (Fashion-MNIST has 10,000)")
    parser.add_argument("--calibration", type=int, default=512, help="training images that calibrate int8")
    parser.add_argument("--cache-dir", type=Path, help="a build cache holding the demo's task heads")
    args = parser.parse_args()
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="simulation-gap-") as work:
        cache = Cache(args.cache_dir or Path(work) / "cache")
        for name in args.models:
            made = _zoo(name, args.images, args.calibration) if name in ZOO_MODELS else None
            model, calibration, test = made or _demo(name, args.images, args.calibration, cache)
            rows += _rows(name, model, calibration, test, Path(work))
    settings = {"calibration_images": args.calibration, "images": args.images}
    rows = common.store_rows("simulation_gap", settings, rows, "model")
    header = ["model", "family", "backend", "images", "eager fp32", "simulated", "runtime", "runtime - simulated [95%]"]
    body = [
        [
            row["model"],
            row["family"],
            row["backend"],
            row["images"],
            row["eager_fp32"],
            row["simulated"],
            row["runtime"],
            "{difference:+.2f} [{interval[0]:+.2f}, {interval[1]:+.2f}], p={p_value}".format(
                **row["runtime_minus_simulated"]  # type: ignore[arg-type]
            ),
        ]
        for row in rows
    ]
    write_text_atomic(RESULTS / "simulation_gap.md", common.markdown_table(header, body))


if __name__ == "__main__":
    main()

"""Do the demo's parents differ once each is fine-tuned end-to-end (``task_head.mode: finetune``)?

Builds the demo project from its parents' ImageNet weights (not the fine-tuned checkpoints it ships) with
``task_head.mode: finetune`` on ``--train-images`` train images for ``--epochs`` epochs in a fresh cache (so
both are trained: probe, then end-to-end), then scores both parents (eager
fp32) on the validation split and on ``--test-images`` test images: top-1 with its 95% Wilson interval and
the paired difference larger - smaller (Newcombe 95% interval, exact McNemar p).

Usage: ``.venv/bin/python benchmarks/parent_finetune.py [--train-images 12000] [--epochs 2] [--input-size 64]
[--save DIR]``. Appends its figures to ``benchmarks/results/parent_finetune.json`` (one entry per setting).
With ``--save``, each fine-tuned parent is also written to DIR as the weight package's own state_dict (its
classifier resized to the task's classes; weight matrices and kernels in float16, the rest as trained) in a
``.safetensors`` file that an ``efficientnet-lite`` model spec loads as its ``checkpoint``, and its sha256
is recorded: the form in which the demo's parents ship (``restnetc/demo/``, pinned by that digest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from restnetc.atomic import write_text_atomic
from restnetc.cache import Cache
from restnetc.config.loader import demo_project_path
from restnetc.config.project import ProjectConfig
from restnetc.data import ImageSet, load_splits
from restnetc.evaluation import compare_paired, wilson_interval
from restnetc.models import BlockModel, decompose
from restnetc.models.factory import build_model
from restnetc.pipeline.parents import load_parents
from restnetc.results import Parent

RESULTS = Path(__file__).parent / "results" / "parent_finetune.json"


def _project(train_images: int, test_images: int, epochs: int, input_size: int) -> ProjectConfig:
    data = yaml.safe_load(demo_project_path().read_text())
    for spec in data["models"].values():  # from the ImageNet weights, not the demo's shipped fine-tuned parents
        spec.pop("checkpoint", None)
        spec.pop("sha256", None)
    data["data"].update(train_images=train_images, test_images=test_images, input_size=input_size)
    data["task_head"] = {**data["task_head"], "mode": "finetune", "finetune": {"epochs": epochs}}
    return ProjectConfig.model_validate(data)


@torch.no_grad()
def _correct(model: BlockModel, images: ImageSet) -> np.ndarray:
    predictions = torch.cat([model(batch).argmax(1) for batch in images.images.split(500)])
    return (predictions == images.labels).numpy()


def _save(project: ProjectConfig, parent: Parent, directory: Path) -> dict[str, object]:
    """Write ``parent`` as its weight package's state_dict (``efficientnet_lite_pytorch`` names) and describe it."""
    spec = project.models[parent.key]  # type: ignore[index]
    net = build_model(spec, project.data.input_size)
    blocks = decompose(net)
    classifier = parent.model.head.classifier
    assert isinstance(classifier, torch.nn.Linear)
    blocks.head.replace_classifier(torch.nn.Linear(classifier.in_features, classifier.out_features))
    net._fc = blocks.head.classifier
    blocks.load_state_dict(parent.model.state_dict())
    state = {
        name: (t.half() if t.is_floating_point() and t.dim() > 1 else t).contiguous()
        for name, t in net.state_dict().items()
    }
    path = directory / f"{parent.name}-fmnist{project.data.input_size}.safetensors"
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, path)
    data = path.read_bytes()
    return {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=12000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=64, help="Pixels per side (the demo's is 64)")
    parser.add_argument("--save", type=Path, help="Also write each fine-tuned parent here (.safetensors)")
    args = parser.parse_args()
    project = _project(args.train_images, args.test_images, args.epochs, args.input_size)
    splits = load_splits(project.data, project.seed)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="parent-finetune-") as cache:
        parents = load_parents(project, splits.train, Cache(Path(cache)))
    entry: dict[str, object] = {
        "train_images": args.train_images,
        "epochs": args.epochs,
        "input_size": args.input_size,
        "seconds_to_train_both_parents": round(time.perf_counter() - start, 1),
    }
    if args.save is not None:
        entry["saved"] = {parent.name: _save(project, parent, args.save) for parent in parents}
    for split, images in (("validation", splits.validation), ("test", splits.test)):
        correct = {parent.name: _correct(parent.model, images) for parent in parents}
        (larger, a), (smaller, b) = correct.items()  # load_parents orders slow-to-fast: larger first
        paired = compare_paired(a, b)
        entry[split] = {
            "images": len(images),
            "top1": {name: round(100 * float(c.mean()), 2) for name, c in correct.items()},
            "interval": {
                name: [round(v, 2) for v in wilson_interval(int(c.sum()), len(c))] for name, c in correct.items()
            },
            f"{larger} - {smaller}": round(paired.difference, 2),
            "difference_interval": [round(v, 2) for v in paired.interval],
            "mcnemar_p": round(paired.p_value, 4),
        }
    print(json.dumps(entry, indent=1))
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    write_text_atomic(RESULTS, json.dumps([*history, entry], indent=1) + "\n")


if __name__ == "__main__":
    main()

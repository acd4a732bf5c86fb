"""Train the model zoo (``restnetc.models.zoo``) on Fashion-MNIST and record each model in ``zoo.json``.

The paper trains its CNN parents on the target dataset; here every parent is trained on the 60,000
Fashion-MNIST training images (Debian's ``dataset-fashion-mnist``) at 32 px, with a fixed seed and one
recipe: AdamW, linear warm-up then cosine decay, label smoothing, random 2 px shifts and horizontal flips.
Accuracy is measured on all 10,000 test images, and again on the first ``CHECK_IMAGES`` of them, which the
test suite re-measures to catch a broken checkpoint or loader. Checkpoints are state dicts stored in
float16 (half the size in git; loading casts them back), and the accuracies are those of the stored weights.

Usage: ``.venv/bin/python benchmarks/zoo/train.py [ARCH ...]`` (default: every zoo architecture); 2 threads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from restnetc.budget.costs import measure
from restnetc.config.project import Normalization, TimmModel
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import ImageSet, pick
from restnetc.models.factory import build_model
from restnetc.models.zoo import IMAGE_SIZE

ZOO = Path(__file__).resolve().parent
MANIFEST = ZOO / "zoo.json"
DATA_ROOT = Path("/usr/share/datasets/fashion-mnist")
NORMALIZATION = Normalization(mean=(0.286, 0.286, 0.286), std=(0.353, 0.353, 0.353))  # Fashion-MNIST statistics
CHECK_IMAGES = 500
SEED = 0
THREADS = 2


@dataclass(frozen=True)
class Recipe:
    """How one architecture is trained."""

    epochs: int
    lr: float
    weight_decay: float = 0.05
    batch_size: int = 128
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.1


RECIPES = {
    "zoo_vgg11": Recipe(epochs=8, lr=1e-3),
    "zoo_vgg19": Recipe(epochs=8, lr=1e-3),
    "zoo_resnet34": Recipe(epochs=8, lr=2e-3),
    "zoo_resnet18": Recipe(epochs=6, lr=2e-3),
    "zoo_deit_s": Recipe(epochs=6, lr=1e-3),
    "zoo_deit_ti": Recipe(epochs=6, lr=1e-3),
    "zoo_swin_ti": Recipe(epochs=10, lr=1e-3),
}


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 px (zero padding in pixel space is the normalised background) and flips."""
    n = images.shape[0]
    background = -NORMALIZATION.mean[0] / NORMALIZATION.std[0]
    padded = F.pad(images, (2, 2, 2, 2), value=background)
    dx, dy = torch.randint(0, 5, (2,), generator=generator).tolist()
    shifted = padded[:, :, dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), shifted.flip(-1), shifted)


def accuracy(model: nn.Module, data: ImageSet) -> float:
    """Top-1 % of ``model`` (eval mode) on ``data``."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in data.batches(500):
            correct += int((model(images).argmax(1) == labels).sum())
    return 100.0 * correct / len(data)


def train(model: nn.Module, data: ImageSet, recipe: Recipe) -> None:
    generator = torch.Generator().manual_seed(SEED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(data) / recipe.batch_size)
    total, warmup = recipe.epochs * steps_per_epoch, int(recipe.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    for epoch in range(recipe.epochs):
        model.train()
        order = torch.randperm(len(data), generator=generator)
        running, start = 0.0, time.perf_counter()
        for step in range(steps_per_epoch):
            index = order[step * recipe.batch_size : (step + 1) * recipe.batch_size]
            images = augment(data.images[index], generator)
            loss = F.cross_entropy(model(images), data.labels[index], label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running += loss.item()
        print(f"  epoch {epoch + 1}/{recipe.epochs}: loss {running / steps_per_epoch:.3f}, "
              f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def train_one(arch: str, train_set: ImageSet, test_set: ImageSet) -> dict[str, object]:
    recipe = RECIPES[arch]
    torch.manual_seed(SEED)
    model = build_model(TimmModel(source="timm", arch=arch), IMAGE_SIZE)
    print(f"{arch}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {recipe}", flush=True)
    wall, cpu = time.perf_counter(), cpu_seconds()
    train(model, train_set, recipe)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    checkpoint = ZOO / f"{arch}.pt"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, checkpoint)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    stored = build_model(TimmModel(source="timm", arch=arch, checkpoint=checkpoint, sha256=digest), IMAGE_SIZE)
    entry = {
        "arch": arch,
        "checkpoint": checkpoint.name,
        "sha256": digest,
        **asdict(measure(stored, torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE))),
        "test_accuracy": accuracy(stored, test_set),
        f"test_accuracy_first_{CHECK_IMAGES}": accuracy(stored, test_set.head(CHECK_IMAGES)),
        "recipe": asdict(recipe),
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
    }
    print(f"{arch}: {entry['test_accuracy']:.2f}% in {wall / 60:.1f} min ({cpu / 60:.1f} CPU min)", flush=True)
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", nargs="*", default=list(RECIPES), help=f"any of {', '.join(RECIPES)}")
    args = parser.parse_args()
    unknown = sorted(set(args.arch) - set(RECIPES))
    if unknown:
        parser.error(f"unknown architecture(s) {unknown}: expected any of {', '.join(RECIPES)}")
    torch.set_num_threads(THREADS)
    common = {"size": IMAGE_SIZE, "normalization": NORMALIZATION}
    train_set = load_fashion_mnist(DATA_ROOT, "train", pick(60000, 60000, SEED), **common)
    test_set = load_fashion_mnist(DATA_ROOT, "test", pick(10000, 10000, SEED), **common)
    for arch in args.arch:
        record(arch, train_one(arch, train_set, test_set))


def record(arch: str, entry: dict[str, object]) -> None:
    """Add ``entry`` to zoo.json, re-read just before writing so runs of different models can overlap."""
    zoo = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {"models": {}}
    zoo.update(
        {
            "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist): 60,000 train / 10,000 test, 32 px RGB",
            "normalization": NORMALIZATION.model_dump(mode="json"),
            "data_seed": SEED,
            "check_images": CHECK_IMAGES,
            "machine": f"{platform.machine()}, {THREADS} threads, torch {torch.__version__}",
        }
    )
    zoo["models"][arch] = entry
    MANIFEST.write_text(json.dumps(zoo, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The project's data checked against what the project asks of it, before any stage runs.

Both source splits must be readable (every file of an image folder opens as an image) and hold the same
classes; the source's training images must hold ``data.train_images`` plus ``data.validation_images`` (the two
disjoint splits drawn from them), its test images ``data.test_images``; the subsets taken from the training
images (``calibration.images``, ``finetune.init_images``, and for a build
the target's ``runtime.calibration_images``) must fit in ``data.train_images``. restnetc has no option to
run on fewer images than asked for: any shortfall is an error naming the folder, file or field.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset

from restnetc.config.project import DataSource, FashionMnistData, ProjectConfig
from restnetc.config.target import Quantization, TargetConfig
from restnetc.data.fashion_mnist import CLASSES, FILES, read_split
from restnetc.errors import DataError

_FOLDER_LAYOUT = "expected one sub-folder of images per class"


@dataclass(frozen=True)
class _Split:
    """What a split holds: where it is (folder or image file), its classes and its number of images."""

    where: Path
    classes: tuple[str, ...]
    images: int


def _check_image(path: Path) -> None:
    try:
        with Image.open(path):
            pass
    except OSError as exc:  # PIL's UnidentifiedImageError is one
        raise DataError(f"{path}: unreadable image ({exc.strerror or 'not an image format PIL reads'})") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: refused as a decompression bomb ({exc})") from None


def _image_folder_split(folder: Path) -> _Split:
    """``folder`` as torchvision's ``ImageFolder`` reads it; DataError for a class without images or a file
    that does not open as an image."""
    try:
        classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    except OSError as exc:
        raise DataError(f"{folder}: cannot read the split folder ({exc.strerror}); {_FOLDER_LAYOUT}") from None
    if not classes:
        raise DataError(f"{folder}: no class folders; {_FOLDER_LAYOUT}")
    samples = make_dataset(folder, {name: i for i, name in enumerate(classes)}, IMG_EXTENSIONS, allow_empty=True)
    counts = Counter(label for _, label in samples)
    for index, name in enumerate(classes):
        if counts[index] == 0:
            raise DataError(f"{folder / name}: no images (files ending in {', '.join(IMG_EXTENSIONS)})")
    for path, _ in samples:
        _check_image(Path(path))
    return _Split(folder, tuple(classes), len(samples))


def _fashion_mnist_split(root: Path, split: Literal["train", "test"]) -> _Split:
    """``split`` of Fashion-MNIST under ``root``; DataError for unreadable files or labels beyond its classes."""
    images, labels = read_split(root, split)
    image_file, label_file = FILES[split]
    present = np.unique(labels).tolist()
    if present and present[-1] >= len(CLASSES):
        raise DataError(f"{root / label_file}: label {present[-1]} is beyond the {len(CLASSES)} classes")
    return _Split(root / image_file, tuple(CLASSES[label] for label in present), int(images.shape[0]))


def _split(source: DataSource, split: Literal["train", "test"]) -> _Split:
    if isinstance(source, FashionMnistData):
        return _fashion_mnist_split(source.root, split)
    return _image_folder_split(source.root / split)


def _same_classes(train: _Split, test: _Split) -> None:
    if train.classes == test.classes:
        return
    only = {"train": set(train.classes) - set(test.classes), "test": set(test.classes) - set(train.classes)}
    detail = "; ".join(f"{', '.join(sorted(names))} only in {split}" for split, names in only.items() if names)
    raise DataError(f"{train.where} and {test.where} hold different classes: {detail}")


def check_data(project: ProjectConfig, build: TargetConfig | None = None) -> None:
    """Raise DataError unless the project's data holds what ``project`` asks for (the least-squares init images
    only when that init is used); for an int8 ``build``, also the target's calibration images (taken from the
    training images)."""
    data = project.data
    subsets = {"calibration.images": project.calibration.images}
    if project.finetune.init == "least-squares":
        subsets["finetune.init_images"] = project.finetune.init_images
    if build is not None and build.runtime.quantization == Quantization.INT8:
        subsets["the target's runtime.calibration_images"] = build.runtime.calibration_images
    for field, count in subsets.items():
        if count > data.train_images:
            raise DataError(f"{field}: asks for {count} images, but data.train_images loads {data.train_images}")
    train, test = _split(data.source, "train"), _split(data.source, "test")
    _same_classes(train, test)
    for split, field, count in (
        (train, "data.train_images + data.validation_images", data.train_images + data.validation_images),
        (test, "data.test_images", data.test_images),
    ):
        if split.images < count:
            raise DataError(f"{split.where}: {split.images} images, but {field} asks for {count}")

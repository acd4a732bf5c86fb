"""User-supplied ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*`` image folders."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, make_dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from restnetc.config.project import Normalization
from restnetc.data.images import ImageSet, to_model_input
from restnetc.data.sources import SourceReader, SourceSplit, SplitSummary, register_data_source
from restnetc.errors import DataError

_FOLDER_LAYOUT = "expected one sub-folder of images per class"


def _dataset(folder: Path) -> ImageFolder:
    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{folder}: {_FOLDER_LAYOUT} ({exc})") from None


def image_folder_size(root: Path, split: SourceSplit) -> int:
    """How many images ``root/split`` holds (the full check is ``data.check``)."""
    return len(_dataset(root / split))


def load_image_folder(
    root: Path,
    split: SourceSplit,
    indices: torch.Tensor,
    size: int,
    normalization: Normalization,
) -> ImageSet:
    """The images ``indices`` of ``root/split`` (in ImageFolder's order): shorter side resized with
    ``normalization.resize`` (PIL, antialiased), centre-cropped."""
    dataset = _dataset(root / split)
    pixels, labels = [], []
    for index in indices.tolist():
        path, label = dataset.samples[index]
        try:
            image = dataset.loader(path).convert("RGB")
        except OSError as exc:
            raise DataError(f"{path}: unreadable image: {exc}") from None
        image = TF.center_crop(TF.resize(image, size, InterpolationMode(normalization.resize)), [size, size])
        pixels.append(TF.to_tensor(image))
        labels.append(label)
    return ImageSet(
        to_model_input(torch.stack(pixels), size, normalization),
        torch.tensor(labels, dtype=torch.int64),
        tuple(dataset.classes),
        indices.clone(),
    )


def _check_image(path: Path) -> None:
    try:
        with Image.open(path):
            pass
    except OSError as exc:  # PIL's UnidentifiedImageError is one
        raise DataError(f"{path}: unreadable image ({exc.strerror or 'not an image format PIL reads'})") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: refused as a decompression bomb ({exc})") from None


def _summary(folder: Path) -> SplitSummary:
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
    return SplitSummary(folder, tuple(classes), len(samples))


def check_image_folder(root: Path, split: SourceSplit) -> SplitSummary:
    """``root/split``: every file opens as an image and every class folder holds one at least."""
    return _summary(root / split)


register_data_source("image-folder", SourceReader(image_folder_size, check_image_folder, load_image_folder))

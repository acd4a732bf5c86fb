"""User-supplied ``ROOT/train/<class>/*`` and ``ROOT/test/<class>/*`` image folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torchvision.datasets import ImageFolder
from torchvision.transforms import functional as TF

from restnetc.config.project import Normalization
from restnetc.data.images import ImageSet, to_model_input
from restnetc.errors import DataError


def _dataset(folder: Path) -> ImageFolder:
    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"{folder}: expected one sub-folder of images per class ({exc})") from None


def image_folder_size(root: Path, split: Literal["train", "test"]) -> int:
    """How many images ``root/split`` holds (the full check is ``data.check``)."""
    return len(_dataset(root / split))


def load_image_folder(
    root: Path,
    split: Literal["train", "test"],
    indices: torch.Tensor,
    size: int,
    normalization: Normalization,
) -> ImageSet:
    """The images ``indices`` of ``root/split`` (in ImageFolder's order): shorter side resized, centre-cropped."""
    dataset = _dataset(root / split)
    pixels, labels = [], []
    for index in indices.tolist():
        path, label = dataset.samples[index]
        try:
            image = dataset.loader(path).convert("RGB")
        except OSError as exc:
            raise DataError(f"{path}: unreadable image: {exc}") from None
        image = TF.center_crop(TF.resize(image, size), [size, size])
        pixels.append(TF.to_tensor(image))
        labels.append(label)
    return ImageSet(
        to_model_input(torch.stack(pixels), size, normalization),
        torch.tensor(labels, dtype=torch.int64),
        tuple(dataset.classes),
        indices.clone(),
    )

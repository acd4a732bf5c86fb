"""Datasets: the configured source's three disjoint splits, loaded as normalised tensors of the input size.

Train and validation are both drawn from the source's training images, from one permutation fixed by the
seed (train its first ``train_images``, validation the next ``validation_images``), so they never share an
image; test is drawn from the source's own test images with its own permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from restnetc.config.project import DataConfig, FashionMnistData
from restnetc.data.fashion_mnist import fashion_mnist_size, load_fashion_mnist
from restnetc.data.image_folder import image_folder_size, load_image_folder
from restnetc.data.images import ImageSet, pick

__all__ = ["ImageSet", "Split", "Splits", "load_split", "load_splits"]

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """The project's three disjoint image sets."""

    train: ImageSet
    validation: ImageSet
    test: ImageSet


def _source_split(split: Split) -> Literal["train", "test"]:
    return "test" if split == "test" else "train"


def load_split(config: DataConfig, split: Split, seed: int) -> ImageSet:
    """The configured images of ``split`` (``seed`` is the project's seed, the same for every split)."""
    source = _source_split(split)
    fashion = isinstance(config.source, FashionMnistData)
    available = (fashion_mnist_size if fashion else image_folder_size)(config.source.root, source)
    if split == "test":
        indices = pick(config.test_images, available, seed + 1)
    else:
        order = pick(config.train_images + config.validation_images, available, seed)
        indices = order[: config.train_images] if split == "train" else order[config.train_images :]
    loader = load_fashion_mnist if fashion else load_image_folder
    return loader(config.source.root, source, indices, config.input_size, config.normalization)


def load_splits(config: DataConfig, seed: int) -> Splits:
    """All three splits; see the module docstring for how they are drawn."""
    return Splits(*(load_split(config, split, seed) for split in SPLITS))

"""Datasets: the configured source's three disjoint splits, loaded as normalised tensors of the input size.

Train and validation are both drawn from the source's training images, from one permutation fixed by the
seed (train its first ``train_images``, validation the next ``validation_images``), so they never share an
image; test is drawn from the source's own test images with its own permutation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from restnetc.config.project import DataConfig
from restnetc.data import fashion_mnist, image_folder  # noqa: F401  (each registers its source)
from restnetc.data.images import ImageSet, pick
from restnetc.data.sources import SourceSplit, get_data_source

__all__ = ["ImageSet", "Split", "Splits", "load_split", "load_splits"]

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    """The project's three disjoint image sets."""

    train: ImageSet
    validation: ImageSet
    test: ImageSet


def _source_split(split: Split) -> SourceSplit:
    return "test" if split == "test" else "train"


def load_split(config: DataConfig, split: Split, seed: int) -> ImageSet:
    """The configured images of ``split`` (``seed`` is the project's seed, the same for every split)."""
    source, reader = _source_split(split), get_data_source(config.source.kind)
    available = reader.size(config.source.root, source)
    if split == "test":
        indices = pick(config.test_images, available, seed + 1)
    else:
        order = pick(config.train_images + config.validation_images, available, seed)
        indices = order[: config.train_images] if split == "train" else order[config.train_images :]
    return reader.load(config.source.root, source, indices, config.input_size, config.pixels())


def load_splits(config: DataConfig, seed: int) -> Splits:
    """All three splits; see the module docstring for how they are drawn."""
    return Splits(*(load_split(config, split, seed) for split in SPLITS))

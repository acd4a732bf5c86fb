"""Datasets: the configured source's three disjoint splits, loaded as normalised tensors of the input size.

Train and validation are both drawn from the source's training images, from one permutation fixed by the
seed: validation its first ``validation_images``, train the next ``train_images``. So they never share an
image, and the validation split stays the same whatever the train split's size: parents trained on a larger
train split of the same seed (the demo's) have never seen it. A source with fewer training images than both
splits ask for fills train first and gives validation the rest. Test is drawn from the source's own test
images with its own permutation.
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
        order = pick(config.validation_images + config.train_images, available, seed)
        held_out = min(config.validation_images, available - min(config.train_images, available))
        indices = order[held_out:] if split == "train" else order[:held_out]
    return reader.load(config.source.root, source, indices, config.input_size, config.pixels())


def load_splits(config: DataConfig, seed: int) -> Splits:
    """All three splits; see the module docstring for how they are drawn."""
    return Splits(*(load_split(config, split, seed) for split in SPLITS))

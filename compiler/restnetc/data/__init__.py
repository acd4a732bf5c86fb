"""Datasets: the configured source loaded as normalised tensors of the project's input size."""

from __future__ import annotations

from typing import Literal

from restnetc.config.project import DataConfig, FashionMnistData
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.image_folder import load_image_folder
from restnetc.data.images import ImageSet

__all__ = ["ImageSet", "load_split"]


def load_split(config: DataConfig, split: Literal["train", "test"], seed: int) -> ImageSet:
    """The configured number of images of ``split`` from the project's data source."""
    count = config.train_images if split == "train" else config.test_images
    loader = load_fashion_mnist if isinstance(config.source, FashionMnistData) else load_image_folder
    return loader(config.source.root, split, count, config.input_size, config.normalization, seed)

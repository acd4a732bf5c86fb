"""Fashion-MNIST from the IDX files of Debian's ``dataset-fashion-mnist`` package."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from restnetc.config.project import Normalization
from restnetc.data.images import ImageSet, to_model_input
from restnetc.data.sources import SourceReader, SourceSplit, SplitSummary, register_data_source
from restnetc.errors import DataError

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""Each split's image file and label file, under the data root."""
_INSTALL_HINT = "install it with: apt-get install dataset-fashion-mnist"


def read_idx(path: Path) -> np.ndarray:
    """Read a gzipped IDX file (unsigned byte data) into an array of its declared shape."""
    try:
        with gzip.open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise DataError(f"{path}: Fashion-MNIST file not found; {_INSTALL_HINT}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable IDX file: {exc}") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    dims = data[3]
    header = 4 + 4 * dims
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path}: IDX payload does not match its declared shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_split(root: Path, split: SourceSplit) -> tuple[np.ndarray, np.ndarray]:
    """``split``'s images ``[N, 28, 28]`` and labels ``[N]``; DataError unless both files read and agree on N."""
    image_file, label_file = FILES[split]
    images = read_idx(root / image_file)
    labels = read_idx(root / label_file)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{root}: {image_file} and {label_file} hold different numbers of items")
    return images, labels


def fashion_mnist_size(root: Path, split: SourceSplit) -> int:
    """How many images ``split`` holds, from its image file's IDX header alone (the full check is ``data.check``)."""
    path = root / FILES[split][0]
    try:
        with gzip.open(path, "rb") as stream:
            header = stream.read(8)
    except FileNotFoundError:
        raise DataError(f"{path}: Fashion-MNIST file not found; {_INSTALL_HINT}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: unreadable IDX file: {exc}") from None
    if len(header) < 8 or header[:3] != b"\0\0\x08":
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    return int.from_bytes(header[4:8], "big")


def load_fashion_mnist(
    root: Path,
    split: SourceSplit,
    indices: torch.Tensor,
    size: int,
    normalization: Normalization,
) -> ImageSet:
    """The images ``indices`` of ``split``, resized to ``size`` and replicated to RGB."""
    images, labels = read_split(root, split)
    chosen = indices.numpy()
    pixels = torch.from_numpy(images[chosen].astype(np.float32) / 255.0).unsqueeze(1)
    return ImageSet(
        to_model_input(pixels, size, normalization),
        torch.from_numpy(labels[chosen].astype(np.int64)),
        CLASSES,
        indices.clone(),
    )


def check_fashion_mnist(root: Path, split: SourceSplit) -> SplitSummary:
    """``split`` of Fashion-MNIST under ``root``; DataError for unreadable files or labels beyond its classes."""
    images, labels = read_split(root, split)
    image_file, label_file = FILES[split]
    present = np.unique(labels).tolist()
    if present and present[-1] >= len(CLASSES):
        raise DataError(f"{root / label_file}: label {present[-1]} is beyond the {len(CLASSES)} classes")
    return SplitSummary(root / image_file, tuple(CLASSES[label] for label in present), int(images.shape[0]))


register_data_source("fashion-mnist", SourceReader(fashion_mnist_size, check_fashion_mnist, load_fashion_mnist))

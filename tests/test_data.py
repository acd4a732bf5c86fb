"""Data sources: Fashion-MNIST IDX files from Debian's package, and user image folders."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restnetc.config.project import DataConfig, Normalization
from restnetc.data import load_split
from restnetc.data.fashion_mnist import read_idx
from restnetc.errors import DataError

NORM = Normalization(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def config(source: dict[str, object], count: int = 12) -> DataConfig:
    return DataConfig.model_validate(
        {"source": source, "input_size": 24, "normalization": NORM, "train_images": count, "test_images": count}
    )


def test_fashion_mnist_subset_is_real_resized_and_reproducible() -> None:
    first = load_split(config({"kind": "fashion-mnist"}), "test", seed=3)
    again = load_split(config({"kind": "fashion-mnist"}), "test", seed=3)
    assert first.images.shape == (12, 3, 24, 24) and first.images.dtype == torch.float32
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert first.classes[9] == "Ankle boot" and int(first.labels.min()) >= 0 and int(first.labels.max()) <= 9
    assert torch.equal(first.images[:, 0], first.images[:, 2]), "grey replicated to RGB"
    assert first.images.min() >= (0 - 0.5) / 0.25 - 1e-5 and first.images.std() > 0.5


def test_idx_reader_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    good = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3])
    (tmp_path / "ok.gz").write_bytes(gzip.compress(good))
    assert read_idx(tmp_path / "ok.gz").tolist() == [1, 2, 3]
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-1]))
    with pytest.raises(DataError, match=r"short.gz: IDX payload does not match its declared shape \(3,\)"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "foreign.gz").write_bytes(gzip.compress(b"PK\x03\x04 zip"))
    with pytest.raises(DataError, match=r"foreign\.gz: not an unsigned-byte IDX file"):
        read_idx(tmp_path / "foreign.gz")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        read_idx(tmp_path / "absent.gz")


def test_image_folder_reads_classes_resizes_and_crops(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(3):
                pixels = rng.integers(0, 255, size=(40, 30 + 10 * k, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / name / f"{k}.png")
    data = load_split(config({"kind": "image-folder", "root": str(tmp_path)}), "train", seed=0)
    assert data.classes == ("cat", "dog") and len(data) == 6
    assert data.images.shape == (6, 3, 24, 24) and sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1]


def test_image_folder_without_class_folders_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="train: expected one sub-folder of images per class"):
        load_split(config({"kind": "image-folder", "root": str(tmp_path)}), "train", seed=0)

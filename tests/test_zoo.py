"""The committed model zoo (benchmarks/zoo/): every checkpoint loads through restnetc's model factory, with
its sha256 checked, and still scores its recorded accuracy on the recorded slice of the test split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from restnetc.config.project import Normalization, TimmModel
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import pick
from restnetc.errors import ConfigError
from restnetc.models import decompose
from restnetc.models.factory import build_model
from restnetc.models.zoo import IMAGE_SIZE
from tests.conftest import REPO

ZOO = REPO / "benchmarks" / "zoo"
MANIFEST: dict[str, Any] = json.loads((ZOO / "zoo.json").read_text())


def _spec(arch: str, checkpoint: Path | None = None) -> TimmModel:
    entry = MANIFEST["models"][arch]
    return TimmModel(
        source="timm", arch=arch, checkpoint=checkpoint or ZOO / entry["checkpoint"], sha256=entry["sha256"]
    )


@pytest.mark.parametrize("arch", sorted(MANIFEST["models"]))
def test_zoo_checkpoint_loads_and_keeps_its_recorded_accuracy(arch: str) -> None:
    entry, count = MANIFEST["models"][arch], MANIFEST["check_images"]
    model = build_model(_spec(arch), IMAGE_SIZE)
    assert sum(p.numel() for p in model.parameters()) == entry["params"]
    norm = Normalization.model_validate(MANIFEST["normalization"])
    test = load_fashion_mnist(
        Path("/usr/share/datasets/fashion-mnist"), "test", pick(10000, 10000, 0), IMAGE_SIZE, norm
    )
    images, labels = test.images[:count], test.labels[:count]
    with torch.no_grad():
        correct = sum(
            int((model(x).argmax(1) == y).sum()) for x, y in zip(images.split(250), labels.split(250), strict=True)
        )
    assert 100.0 * correct / count == pytest.approx(entry[f"test_accuracy_first_{count}"], abs=1.0)
    assert decompose(model).blocks, "every zoo model must decompose into blocks for stitching"


def test_a_checkpoint_with_a_different_digest_is_refused(tmp_path: Path) -> None:
    arch = sorted(MANIFEST["models"])[0]
    copy = tmp_path / "tampered.pt"
    shutil.copy(ZOO / MANIFEST["models"][arch]["checkpoint"], copy)
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"tampered\.pt: sha256 is [0-9a-f]{64}, the project expects"):
        build_model(_spec(arch, copy), IMAGE_SIZE)

"""The accuracy policy: int8 artifacts that lose more than the tolerance are caught and handled as configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restnetc.backends import get_backend
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import BuildError, HeldOut, Lowerer, Verified
from restnetc.bundle.screening import quantization_units
from restnetc.cache import Cache
from restnetc.config.target import AccuracyPolicy, Backend, Quantization
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from tests import zoo


@pytest.fixture(scope="module")
def case() -> tuple[Rung, HeldOut, torch.Tensor, torch.Tensor]:
    """A stitched tiny CNN whose 'labels' are its own fp32 predictions: eager is 100%, int8 loses a little."""
    model = build_stitched(decompose(zoo.make("resnet")), 1, decompose(zoo.make("vgg", 1)), 2, zoo.SIZE)
    images = torch.randn(48, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    eager = eager_logits(model, images)
    rung = Rung("stitch-01-02", "variant", model, 0, 0, None, None)
    return rung, HeldOut.of(images, eager.argmax(1)), eager, images[:16]


def build(policy: str, case: tuple[Rung, HeldOut, torch.Tensor, torch.Tensor], tmp_path: Path) -> Verified:
    """The tiny case built for ExecuTorch int8 with a zero tolerance under ``policy``."""
    rung, held_out, eager, calibration = case
    accuracy = AccuracyPolicy(tolerance_points=0.0, policy=policy)  # type: ignore[arg-type]
    lowerer = Lowerer(Quantization.INT8, calibration, held_out, accuracy, 1, Cache(tmp_path / "cache"), tmp_path)
    backend = get_backend(Backend.EXECUTORCH)
    return lowerer.build_all([rung], [backend], {rung.id: eager}, {rung.id: 100.0})[(rung.id, backend.name)]


def test_fail_policy_stops_the_build(case: tuple[Rung, HeldOut, torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    with pytest.raises(BuildError, match=r"stitch-01-02 executorch int8: top-1 .* below eager fp32 100\.00%"):
        build("fail", case, tmp_path)


def test_keep_float_screens_candidates_and_keeps_the_better_artifact(
    case: tuple[Rung, HeldOut, torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    plain = build("warn", case, tmp_path)
    assert plain.policy.startswith("warn: kept with a") and plain.evaluation.accuracy < 100.0
    kept = build("keep-float", case, tmp_path)
    assert kept.policy.startswith("keep-float: int8 lost")
    rung, _, _, calibration = case
    assert set(kept.float_modules) <= set(quantization_units(rung.model, calibration[:1]))
    assert kept.evaluation.accuracy >= plain.evaluation.accuracy

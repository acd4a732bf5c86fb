"""The accuracy policy: int8 artifacts that lose more than the tolerance are caught and handled as configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from restnetc.backends import get_backend
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import BuildError, HeldOut, Lowerer
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
    rung = Rung("stitch-01-02", "variant", model, 0, 0, None, None, (("stitch",), ("stitch", "head")))
    return rung, HeldOut.of(images, eager.argmax(1)), eager, images[:16]


def lowerer(policy: str, held_out: HeldOut, calibration: torch.Tensor, tmp_path: Path) -> Lowerer:
    accuracy = AccuracyPolicy(tolerance_points=0.0, policy=policy)  # type: ignore[arg-type]
    return Lowerer(Quantization.INT8, calibration, held_out, accuracy, 1, Cache(tmp_path / "cache"), tmp_path)


def test_fail_policy_stops_the_build(case: tuple[Rung, HeldOut, torch.Tensor, torch.Tensor], tmp_path: Path) -> None:
    rung, held_out, eager, calibration = case
    with pytest.raises(BuildError, match=r"stitch-01-02 executorch int8: top-1 .* below eager fp32 100\.00%"):
        lowerer("fail", held_out, calibration, tmp_path).build(rung, get_backend(Backend.EXECUTORCH), eager, 100.0)


def test_keep_float_screens_candidates_and_keeps_the_better_artifact(
    case: tuple[Rung, HeldOut, torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    rung, held_out, eager, calibration = case
    plain = lowerer("warn", held_out, calibration, tmp_path).build(rung, get_backend(Backend.EXECUTORCH), eager, 100.0)
    assert plain.policy.startswith("warn: kept with a") and plain.evaluation.accuracy < 100.0
    kept = lowerer("keep-float", held_out, calibration, tmp_path).build(
        rung, get_backend(Backend.EXECUTORCH), eager, 100.0
    )
    assert kept.policy.startswith("keep-float: int8 lost")
    assert kept.float_modules in ((), ("stitch",), ("stitch", "head"))
    assert kept.evaluation.accuracy >= plain.evaluation.accuracy

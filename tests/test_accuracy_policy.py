"""The accuracy policy: int8 artifacts that lose more than the tolerance are caught and handled as configured."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
from torch import nn

from restnetc.backends import get_backend
from restnetc.bundle.accuracy_policy import AccuracyRule, get_policy, list_policies, register_policy
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import Lowerer
from restnetc.bundle.packing import Member, PackJob, pack_all
from restnetc.bundle.screening import quantization_units
from restnetc.bundle.verification import BuildError, EagerLogits, HeldOut, Verified, Verifier
from restnetc.cache import Cache
from restnetc.config.target import AccuracyPolicy, Backend, Quantization
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from tests import zoo

OUTLIER = 1e4
"""How much larger one channel of an activation inside the first front block is made (see ``case``)."""


@torch.no_grad()
def _outlier_inside(block: nn.Module, channel: int = 0) -> None:
    """Scale ``channel`` between a ResNet basic block's two convolutions by ``OUTLIER``, keeping its function:
    ``bn1`` (then ReLU, positively homogeneous) scales it up and ``conv2`` scales its input weights down. An
    int8 activation quantizer (one scale per tensor) then has no resolution left for the other channels; the
    block computes the same in float."""
    bn1, conv2 = block.bn1, block.conv2
    assert isinstance(bn1, nn.BatchNorm2d) and isinstance(conv2, nn.Conv2d)
    bn1.weight[channel] *= OUTLIER
    bn1.bias[channel] *= OUTLIER
    conv2.weight[:, channel] /= OUTLIER


@pytest.fixture(scope="module")
def case() -> tuple[Rung, HeldOut, HeldOut, torch.Tensor]:
    """A stitched tiny CNN whose 'labels' are its own fp32 predictions, with an outlier channel inside its
    first front block: eager is 100%, all-int8 loses much, and float for that block wins it back.

    Returns the rung, its validation and test images (48 each) and 16 calibration images."""
    model = build_stitched(decompose(zoo.make("resnet")), 1, decompose(zoo.make("vgg", 1)), 2, zoo.SIZE)
    _outlier_inside(model.front_blocks[0])
    images = torch.randn(112, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    labels = eager_logits(model, images).argmax(1)
    rung = Rung("stitch-01-02", "variant", model, 0, 0, None, None)
    validation, test = HeldOut.of(images[:48], labels[:48]), HeldOut.of(images[48:96], labels[48:96])
    return rung, validation, test, images[96:]


def _lowerer(policy: str, case: tuple[Rung, HeldOut, HeldOut, torch.Tensor], tmp_path: Path) -> Lowerer:
    """ExecuTorch int8 for the tiny case with a zero tolerance under ``policy``, cached under ``tmp_path``."""
    _, validation, test, calibration = case
    accuracy = AccuracyPolicy(tolerance_points=0.0, policy=policy)  # type: ignore[arg-type]
    cache = Cache(tmp_path / "cache")
    return Lowerer(Quantization.INT8, calibration, Verifier(validation, test, 1, cache, tmp_path), accuracy, cache)


def _eager(case: tuple[Rung, HeldOut, HeldOut, torch.Tensor]) -> EagerLogits:
    rung, validation, test, _ = case
    return EagerLogits(eager_logits(rung.model, validation.images), eager_logits(rung.model, test.images))


def build(policy: str, case: tuple[Rung, HeldOut, HeldOut, torch.Tensor], tmp_path: Path) -> Verified:
    """The tiny case built for ExecuTorch int8 with a zero tolerance under ``policy``."""
    rung, backend = case[0], get_backend(Backend.EXECUTORCH)
    built = _lowerer(policy, case, tmp_path).build_all([rung], [backend], {rung.id: _eager(case)})
    return built[(rung.id, backend.name)]


def test_fail_policy_stops_the_build(case: tuple[Rung, HeldOut, HeldOut, torch.Tensor], tmp_path: Path) -> None:
    with pytest.raises(
        BuildError, match=r"stitch-01-02 executorch int8: validation top-1 .* below eager fp32 100\.00%"
    ):
        build("fail", case, tmp_path)


def test_keep_float_screens_candidates_and_keeps_the_better_artifact(
    case: tuple[Rung, HeldOut, HeldOut, torch.Tensor], tmp_path: Path
) -> None:
    plain = build("warn", case, tmp_path)
    assert plain.policy.startswith("warn: kept with a") and plain.evaluation.validation.accuracy < 100.0
    kept = build("keep-float", case, tmp_path)
    assert kept.policy.startswith("keep-float: int8 lost")
    rung, _, _, calibration = case
    assert set(kept.float_modules) <= set(quantization_units(rung.model, calibration[:1]))
    assert "front_blocks.0" in kept.float_modules, "the block with the outlier stays in float"
    assert kept.evaluation.validation.accuracy > plain.evaluation.validation.accuracy
    # What int8 alone gave stays on record (the manifest's accuracy.all_int8), also when the outcome is cached.
    assert plain.all_int8 is None and kept.all_int8 == plain.evaluation
    with pytest.MonkeyPatch.context() as patch:  # from the cache: nothing is lowered again
        patch.setattr(Lowerer, "build_pair", lambda *_: pytest.fail("the stored outcome was not reused"))
        assert build("keep-float", case, tmp_path).all_int8 == plain.evaluation


def test_a_rung_keeping_float_units_enters_a_ladder_program_as_its_own_file(
    case: tuple[Rung, HeldOut, HeldOut, torch.Tensor], tmp_path: Path
) -> None:
    """Packing makes a keep-float rung's entry point from the graph its own artifact was compiled from, float
    units included: the program's entry point scores exactly what the rung's own file scored (``pack`` refuses
    otherwise), and that is not what the all-int8 graph scores. Fails when packing drops the float units or
    calibrates the rung differently from its lowering."""
    kept = build("keep-float", case, tmp_path)
    assert kept.float_modules and kept.all_int8 is not None
    member = Member(case[0], kept, _eager(case))
    packed = pack_all(_lowerer("keep-float", case, tmp_path), [PackJob(Backend.EXECUTORCH, (member,))])
    figures = packed[Backend.EXECUTORCH].evaluations[member.entry_point]
    assert figures == kept.evaluation and figures.validation != kept.all_int8.validation


def test_the_policy_registry_holds_exactly_the_names_a_target_accepts() -> None:
    accepted = typing.get_args(AccuracyPolicy.model_fields["policy"].annotation)
    assert sorted(list_policies()) == sorted(accepted)
    assert all(isinstance(get_policy(name), AccuracyRule) for name in accepted)


def test_the_policy_registry_rejects_duplicates_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="'warn' is already registered"):
        register_policy("warn")(type(get_policy("warn")))
    with pytest.raises(ValueError, match="unknown accuracy policy 'retry'; registered: fail, warn, keep-float"):
        get_policy("retry")

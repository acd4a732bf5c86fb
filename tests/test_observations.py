"""Calibrated observers kept in the cache (``lowering.Observations``): each model is calibrated once per build,
and a graph made again from stored observers is the very graph lowering made and verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from restnetc.backends import get_backend, list_backends, pt2e
from restnetc.backends.pt2e import Donor
from restnetc.bundle import lowering
from restnetc.bundle.ladder import Rung
from restnetc.bundle.lowering import Graphs, Observations
from restnetc.cache import Cache
from restnetc.config.target import Backend
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from restnetc.native_output import captured
from tests import zoo


def _logits(rung: Rung, backend: Backend, observations: Observations, images: torch.Tensor) -> torch.Tensor:
    graph, _ = Graphs(rung, get_backend(backend), observations).int8(())
    with torch.no_grad():
        return graph(images)  # type: ignore[no-any-return]


def _refuse(what: str) -> Callable[..., None]:
    def refuse(*_: object) -> None:
        raise AssertionError(f"{what} although it was stored")

    return refuse


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_stored_observations_and_biases_make_the_same_graphs_without_measuring_again(
    name: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stitched rung calibrates itself and its back parent (its donor) once and stores both observations and
    both corrected biases. Made again from the cache, its int8 graph computes exactly what the first did,
    calibrating and correcting nothing; so does the parent's own graph, and exactly what the parent computes
    uncached; a second rung on the same parent takes the parent's stored biases for its shared layers, and
    computes what it computes uncached.
    Fails when a stored observer state, float mean, donor bias or corrected bias is lost or misplaced (the
    logits move), or when a stored stage is measured again."""
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", 1))
    parent = Rung("parent-vgg", "parent", back, 0, 0, None, None)

    def variant(point: int) -> Rung:
        model = build_stitched(front, 1, back, point, zoo.SIZE)
        return Rung(
            f"stitch-01-{point}", "variant", model, 0, 0, None, None, donor=Donor(back, model.shared_with_back())
        )

    rungs = {point: variant(point) for point in (2, 3)}
    images = torch.randn(32, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(7))
    observations, uncached = Observations(Cache(tmp_path), images, "calibration", {}), Observations.uncached(images)
    with captured():
        first = _logits(rungs[2], name, observations, images)
        assert len(list(tmp_path.glob("int8-observed-*.pt"))) == 2, "the rung's and its donor's observers"
        with monkeypatch.context() as patch:
            patch.setattr(pt2e, "_calibrate", _refuse("calibrated"))
            patch.setattr(pt2e, "correct_biases", _refuse("corrected"))
            assert torch.equal(_logits(rungs[2], name, observations, images), first)
        with monkeypatch.context() as patch:  # the first rung stored the parent's observers and biases
            patch.setattr(pt2e, "_calibrate", _refuse("calibrated"))
            patch.setattr(pt2e, "correct_biases", _refuse("corrected"))
            parents = _logits(parent, name, observations, images)
        with monkeypatch.context() as patch:
            patch.setattr(lowering, "all_int8_biases", _refuse("corrected the donor"))
            second = _logits(rungs[3], name, observations, images)
        assert torch.equal(parents, _logits(parent, name, uncached, images))
        assert torch.equal(second, _logits(rungs[3], name, uncached, images))


def test_observers_of_another_export_are_not_restored() -> None:
    """Stored observers restore only onto an export with the very same observers: a graph of another model
    gets None (the caller calibrates), never states placed on the wrong values."""
    backend = get_backend(Backend.EXECUTORCH)
    images = torch.randn(8, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(8))
    with captured():
        vgg = pt2e.export_batched(decompose(zoo.make("vgg", 1)), images)
        resnet = pt2e.export_batched(decompose(zoo.make("resnet")), images)
        stored = pt2e.observed_tensors(pt2e.observe(vgg, backend.int8_quantizer(), images))
        assert pt2e.restore_observed(vgg, backend.int8_quantizer(), stored) is not None
        assert pt2e.restore_observed(resnet, backend.int8_quantizer(), stored) is None

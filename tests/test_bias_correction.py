"""Bias correction after PT2E conversion: every backend's int8 graph gives, on the images it was corrected on,
each layer's mean output per channel of the float model, where plain conversion does not."""

from __future__ import annotations

import copy

import pytest
import torch
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

from restnetc.backends import get_backend, list_backends
from restnetc.backends.bias_correction import BIAS_IMAGES, Means, layer_biases, layer_means
from restnetc.backends.pt2e import Donor, export_batched, observe
from restnetc.config.target import Backend
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from restnetc.native_output import captured
from tests import zoo


def _worst(means: Means, reference: Means) -> float:
    """The largest miss of a layer's channel mean, relative to that layer's largest reference mean."""
    assert means.keys() == reference.keys()
    return max(float((means[k] - v).abs().max() / v.abs().max()) for k, v in reference.items())


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_every_layers_mean_output_is_the_float_models(name: Backend) -> None:
    """On the correction images (the first ``BIAS_IMAGES`` of calibration), each of EfficientNet-Lite0's 50
    layers misses the float model's mean output per channel by under 1% of the layer's scale (exact where
    computed; rerunning the corrected graph re-rounds a few values downstream), against 3.6% for plain
    conversion of the same annotated, calibrated graph. Correcting writes no tensor it shares with the export or
    the float model: a second graph from the same export comes out the same."""
    backend = get_backend(name)
    model = decompose(zoo.make("efficientnet-lite"))
    calibration = torch.randn(BIAS_IMAGES + 32, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(5))
    images = calibration[:BIAS_IMAGES]
    with captured(), torch.no_grad():
        logits = model(images)
        exported = export_batched(model, calibration)
        observed = observe(exported, backend.int8_quantizer(), calibration)
        corrected, _ = backend.quantize(exported, calibration, (), observed)
        again, _ = backend.quantize(exported, calibration, (), observed)
        plain = convert_pt2e(copy.deepcopy(observed.graph), fold_quantize=False)
        assert torch.equal(model(images), logits), "correcting a graph changed the float model's weights"
    assert len(observed.means) == 50
    assert _worst(layer_means(corrected, images), observed.means) < 0.01
    assert _worst(layer_means(plain, images), observed.means) > 0.02
    ours, theirs = layer_biases(corrected), layer_biases(again)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), "corrections leaked"


def test_a_rungs_shared_layers_take_the_donors_biases_the_first_after_the_stitch_included() -> None:
    """A rung stitched into its back parent's modules: every layer there takes the parent's own corrected bias
    (so the rung stores the parent's bytes), the first layer after the stitch too, since the stitching layer's
    output takes the range the parent gives that layer's input. Fails when the donor's biases miss a layer
    (the first one's input then kept the rung's own scale) or differ from the parent's."""
    backend = get_backend(Backend.EXECUTORCH)
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", 1))
    rung = build_stitched(front, 1, back, 2, zoo.SIZE)
    donor = Donor(back, rung.shared_with_back())
    images = torch.randn(32, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(6))
    with captured():
        observed = observe(export_batched(rung, images), backend.int8_quantizer(), images, donor)
        parent = observe(export_batched(back, images), backend.int8_quantizer(), images)
        parents_own, _ = backend.quantize(export_batched(back, images), images, (), parent)
    shared = [name for name in observed.means if _inside(observed.graph, name, donor)]
    assert len(shared) > 2 and list(observed.biases) == shared, (shared, list(observed.biases))
    theirs = list(layer_biases(parents_own).values())[-len(shared) :]  # the back part is the parent's tail
    assert all(torch.equal(ours, bias) for ours, bias in zip(observed.biases.values(), theirs, strict=True))


def _inside(graph: torch.fx.GraphModule, name: str, donor: Donor) -> bool:
    """Whether ``graph``'s node ``name`` was traced inside a module ``donor`` shares."""
    node = next(node for node in graph.graph.nodes if node.name == name)
    return any(donor.rename(path) is not None for path, _ in node.meta["nn_module_stack"].values())

"""A build ships only programs that compute what they were compiled from (``verification.Reference``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from restnetc.backends import Backend, Lowered, get_backend, list_backends
from restnetc.bundle.ladder import Rung, eager_logits
from restnetc.bundle.lowering import Lowerer
from restnetc.bundle.verification import BuildError, EagerLogits, HeldOut, Verifier
from restnetc.cache import Cache
from restnetc.config.target import AccuracyPolicy, Quantization
from restnetc.config.target import Backend as BackendName
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from tests import zoo


@pytest.fixture(scope="module")
def rung() -> Rung:
    model = build_stitched(decompose(zoo.make("resnet")), 1, decompose(zoo.make("vgg", 1)), 2, zoo.SIZE)
    return Rung("stitch-01-02", "variant", model, 0, 0, None, None)


def _lowerer(rung: Rung, quantization: Quantization, tmp_path: Path) -> tuple[Lowerer, EagerLogits]:
    """A lowerer of ``quantization`` artifacts verified on 32 + 32 images, and ``rung``'s eager logits there."""
    images = torch.randn(80, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    labels = eager_logits(rung.model, images).argmax(1)
    validation, test = HeldOut.of(images[:32], labels[:32]), HeldOut.of(images[32:64], labels[32:64])
    tmp_path.mkdir(exist_ok=True)
    cache = Cache(tmp_path / "cache")
    verifier = Verifier(validation, test, 1, cache, tmp_path)
    policy = AccuracyPolicy(tolerance_points=100.0)  # int8's loss is not what stops these builds
    eager = EagerLogits(eager_logits(rung.model, validation.images), eager_logits(rung.model, test.images))
    return Lowerer(quantization, images[64:], verifier, policy, cache), eager


def _rolled(graph: nn.Module) -> torch.fx.GraphModule:
    """A copy of the graph whose logits come out shifted by one class: what a lowering that mixes up an
    output's layout would compute."""
    if not isinstance(graph, torch.fx.GraphModule):  # a float model: traced as the toolchain exports it
        graph = torch.export.export(graph, (torch.zeros(1, 3, zoo.SIZE, zoo.SIZE),)).module()
    rolled = copy.deepcopy(graph)
    output = rolled.graph.output_node()
    (logits,) = output.args[0] if isinstance(output.args[0], tuple | list) else (output.args[0],)
    with rolled.graph.inserting_before(output):
        ends = [
            rolled.graph.call_function(torch.ops.aten.slice.Tensor, (logits, 1, *span)) for span in [(1, 10), (0, 1)]
        ]
        joined = rolled.graph.call_function(torch.ops.aten.cat.default, (ends, 1))
    output.args = ((joined,),) if isinstance(output.args[0], tuple | list) else (joined,)
    rolled.recompile()
    return rolled


@pytest.mark.parametrize("quantization", [Quantization.INT8, Quantization.FP32])
@pytest.mark.parametrize("name", list_backends())
def test_a_program_that_does_not_compute_its_graph_stops_the_build_and_is_not_recorded(
    name: str, quantization: Quantization, rung: Rung, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lowering is made to compile a graph whose logits are shifted by one class. Fails when the build
    verifies artifacts only against eager fp32 (the policy's tolerance lets any loss through) or records the
    figures of such bytes."""
    backend = get_backend(BackendName(name))
    compile_graph = type(backend).compile

    def faulty(self: Backend, graph: nn.Module, example: torch.Tensor, *args: object) -> Lowered:
        return compile_graph(self, _rolled(graph), example, *args)  # type: ignore[arg-type]

    lowerer, eager = _lowerer(rung, quantization, tmp_path / "faulty")
    with monkeypatch.context() as patch:
        patch.setattr(type(backend), "compile", faulty)
        with pytest.raises(
            BuildError, match=r"stitch-01-02 .*: the lowered program does not compute what it was compiled from"
        ):
            lowerer.build_all([rung], [backend], {rung.id: eager})
    assert not list((tmp_path / "faulty" / "cache").rglob("verify*")), (
        "figures of bytes that failed the check were stored"
    )
    sound, _ = _lowerer(rung, quantization, tmp_path / "sound")  # the toolchain's own program passes
    built = sound.build_all([rung], [backend], {rung.id: eager})
    assert built[(rung.id, name)].evaluation.validation.agreement > 50
    assert list((tmp_path / "sound" / "cache").glob("verify-*")), "the glob above names the figures' files"

"""One lowered program per backend holds several rungs, each behind its own entry point: every entry point
computes exactly what the rung's own file computes, reports the same delegation and I/O quantization, and the
weights the rungs share are stored once (the whole ladder costs little more than its two parents' files)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends import Backend as BackendImpl
from restnetc.backends import TensorQuantization, get_backend, list_backends
from restnetc.backends.pt2e import Donor, adopt, export_batched, observe
from restnetc.bundle.manifest import Quantization as ManifestQuantization
from restnetc.bundle.manifest import write_manifest
from restnetc.bundle.runtime_index import write_index
from restnetc.config.target import Backend
from restnetc.errors import RestnetcError
from restnetc.frontend.stitch import StitchedModel, build_stitched
from restnetc.models import decompose
from restnetc.native_output import captured
from restnetc.runtime import Bundle, Runner, ShimError
from tests import zoo
from tests.fakes import write_fake_bundle

PARENTS_FACTOR = 1.15
"""Issue 16's bound: a ladder file is at most this times the two parents' own files together."""


@pytest.fixture(scope="module")
def rungs() -> dict[str, nn.Module]:
    """Two tiny parents and a rung stitched from their very modules (front blocks of one, back blocks of the other)."""
    front, back = decompose(zoo.make("resnet")), decompose(zoo.make("vgg", 1))
    return {"parent_a": front, "parent_b": back, "stitch_1_2": build_stitched(front, 1, back, 2, zoo.SIZE)}


def _int8_graphs(
    backend: BackendImpl, rungs: dict[str, nn.Module], images: torch.Tensor
) -> tuple[dict[str, nn.Module], Quantizer]:
    """Each rung as the backend compiles it for int8: quantized on its own calibration pass."""
    graphs = {name: backend.quantize(export_batched(model, images), images)[0] for name, model in rungs.items()}
    return graphs, backend.int8_quantizer()


def _record(q: TensorQuantization | None) -> ManifestQuantization | None:
    return None if q is None else ManifestQuantization.model_validate(dataclasses.asdict(q))


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_each_entry_point_is_its_rungs_own_file_and_shared_weights_are_stored_once(
    rungs: dict[str, nn.Module], name: Backend, tmp_path: Path
) -> None:
    """int8, the product's path (each rung calibrated on its own); float programs share the same code."""
    backend = get_backend(name)
    images = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(2))
    graphs, quantizer = _int8_graphs(backend, rungs, images)
    with captured():
        program = backend.compile_program(graphs, images[:1], quantizer)
        separate = {rung: backend.compile(graph, images[:1], quantizer) for rung, graph in graphs.items()}
    assert [entry.name for entry in program.entry_points] == list(rungs)
    path = tmp_path / f"ladder{backend.suffix}"
    path.write_bytes(program.data)
    for rung, lowered in separate.items():
        own = tmp_path / f"{rung}{backend.suffix}"
        own.write_bytes(lowered.data)
        expected = backend.runtime.load(own, threads=1)(images.numpy())
        # exact: the same program on one thread is deterministic, and any other rung's logits would differ
        assert np.array_equal(backend.runtime.load(path, threads=1, entry_point=rung)(images.numpy()), expected), rung
        entry = program.entry(rung)
        assert (entry.input_quantization, entry.output_quantization) == (
            lowered.input_quantization,
            lowered.output_quantization,
        )
        assert entry.delegation == lowered.delegation, rung
        assert entry.planned_memory == lowered.planned_memory
    parents = len(separate["parent_a"].data) + len(separate["parent_b"].data)
    assert len(program.data) <= PARENTS_FACTOR * parents, "the shared blocks are stored once"
    assert len(program.data) < sum(len(s.data) for s in separate.values())


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_an_unknown_entry_point_or_an_empty_name_is_refused(
    rungs: dict[str, nn.Module], name: Backend, tmp_path: Path
) -> None:
    backend = get_backend(name)
    example = torch.randn(1, 3, zoo.SIZE, zoo.SIZE)
    for names in ({"": rungs["parent_a"]}, {"stitch-01-02": rungs["parent_a"]}, {"a" * 64: rungs["parent_a"]}):
        with pytest.raises(ValueError, match="entry point names must be distinct and match"):
            backend.compile_program(names, example, None)
    with captured():
        program = backend.compile_program({"parent_a": rungs["parent_a"]}, example, None)
    path = tmp_path / f"one{backend.suffix}"
    path.write_bytes(program.data)
    with pytest.raises(RestnetcError, match=r"no (method|signature) 'parent_b'.*parent_a"):
        backend.runtime.load(path, threads=1, entry_point="parent_b")
    with pytest.raises(KeyError, match="no entry point 'parent_b'; the program has parent_a"):
        program.entry("parent_b")


def test_the_shim_runs_every_signature_of_a_ladder_file_like_the_python_runtime(
    rungs: dict[str, nn.Module], tmp_path: Path
) -> None:
    """Artifacts that share one LiteRT file and differ by entry point: the C core's LiteRT backend runs the
    signature each names (the ExecuTorch backend loads ``entry_point`` as its method already)."""
    backend = get_backend(Backend.LITERT)
    images = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    graphs, quantizer = _int8_graphs(backend, rungs, images)
    with captured():
        program = backend.compile_program(graphs, images[:1], quantizer)
    file = "litert/ladder.tflite"
    manifest = write_fake_bundle(tmp_path, {file: program.data})
    shared = manifest.artifacts[0]
    artifacts = [
        shared.model_copy(
            update={
                "id": entry.name,
                "entry_point": entry.name,
                "input": shared.input.model_copy(
                    update={
                        "quantization": _record(entry.input_quantization),
                        "output_quantization": _record(entry.output_quantization),
                        "layout": entry.input_layout,
                    }
                ),
            }
        )
        for entry in program.entry_points
    ]
    manifest = manifest.model_copy(update={"artifacts": artifacts, "labels": [f"c{i}" for i in range(zoo.CLASSES)]})
    write_manifest(tmp_path, manifest)
    write_index(tmp_path, manifest)
    (tmp_path / "plenty" / "proc").mkdir(parents=True)
    (tmp_path / "plenty" / "proc" / "meminfo").write_text("MemAvailable: 8000000 kB\n")
    with Bundle(tmp_path) as opened:
        for entry in program.entry_points:
            expected = backend.runtime.load(tmp_path / file, 1, entry.name)(images[:2].numpy())
            with Runner(opened, "litert", memory_root=tmp_path / "plenty", override=entry.name) as runner:
                assert runner.current is not None and runner.current.entry_point == entry.name
                for image, logits in zip(images[:2].numpy(), expected, strict=True):
                    np.testing.assert_allclose(runner.run(image), logits, atol=1e-5)
        broken = artifacts[0].model_copy(update={"entry_point": "missing"})
    write_index(tmp_path, manifest.model_copy(update={"artifacts": [broken]}))
    with Bundle(tmp_path) as opened, pytest.raises(ShimError, match="no signature 'missing' in the program"):
        Runner(opened, "litert", memory_root=tmp_path / "plenty", override=broken.id)


_LAYERS = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)


def _observer_nodes(graph: torch.fx.GraphModule) -> list[torch.fx.Node]:
    return [n for n in graph.graph.nodes if n.op == "call_module" and str(n.target).startswith("activation_post")]


def _module(node: object) -> str:
    """The innermost module path ``node`` (an operator) was traced in, or ""."""
    stack = node.meta.get("nn_module_stack") if isinstance(node, torch.fx.Node) else None
    return list(stack.values())[-1][0] if stack else ""


def _in_stitch(node: object) -> bool:
    return _module(node) == "stitch" or _module(node).startswith("stitch.")


def _shared(node: torch.fx.Node, donor: Donor) -> bool:
    """Whether ``node`` is an operator traced inside a module the rung shares with ``donor``."""
    return donor.rename(_module(node)) is not None


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_a_stitched_rung_quantizes_its_back_parents_modules_to_the_parents_bytes(
    rungs: dict[str, nn.Module], name: Backend
) -> None:
    """With its back parent as donor, every observer of the rung's back part finds the parent's (none keeps its
    own state), the stitching layer's output entering it included, so every layer there takes the parent's bias;
    and a program stores those modules once: it is smaller than with the rung calibrated alone. Fails when values
    go unmatched or are matched to the wrong observers (the rung's biases then differ), or when the first layer
    after the stitch reads its input under the rung's own range.
    Where the backend checks it, packed weights may be shared (the next test makes a conflict): bias correction
    gives every layer the rung computes under its own scales a bias of its own, so no kernel and bias pair is
    read under two quantizations."""
    backend = get_backend(name)
    images = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(3))
    stitched = rungs["stitch_1_2"]
    assert isinstance(stitched, StitchedModel)
    donor = Donor(rungs["parent_b"], stitched.shared_with_back())
    quantizer = backend.int8_quantizer()
    with captured():
        exported = export_batched(stitched, images)
        parent = observe(export_batched(donor.model, images), quantizer, images)
        target = observe(exported, quantizer, images).graph
        adoption = adopt(parent.graph, target, donor.rename)
        assert adoption.unmatched == (), adoption
        entering = [
            n for n in _observer_nodes(target) if _in_stitch(n.args[0]) and all(_shared(u, donor) for u in n.users)
        ]
        assert len(entering) == 1 and str(entering[0].target) in adoption.adopted, (entering, adoption)
        layers = [n for n in target.graph.nodes if n.target in _LAYERS and _shared(n, donor)]
        assert set(observe(exported, quantizer, images, donor).biases) == {n.name for n in layers}
        graphs = {n: backend.quantize(export_batched(m, images), images)[0] for n, m in rungs.items()}

        def program(rung_donor: Donor | None) -> bytes:
            observed = observe(exported, quantizer, images, rung_donor)
            graphs["stitch_1_2"] = backend.quantize(exported, images, (), observed)[0]
            return backend.compile_program(graphs, images[:1], quantizer).data

        shared, alone = program(donor), program(None)
        twice = backend.compile_program({"one": graphs["parent_b"], "two": graphs["parent_b"]}, images[:1], quantizer)
    assert len(shared) < len(alone)
    packing, unshared, same = (backend.packing(data) for data in (shared, alone, twice.data))
    assert all(p.shared == p.checked for p in (packing, unshared, same)), (packing, unshared)


@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_one_kernel_and_bias_read_under_two_quantizations_is_a_packing_conflict(name: Backend) -> None:
    """A bias-free convolution calibrated on images and on the same images doubled: one int8 kernel (per-channel
    weight scales do not depend on calibration) read under two input scales, with no bias to tell the packings
    apart, is the one conflict (the linear layers' corrected biases differ, so theirs do not collide). Every
    backend checks its files (a check that always said "no conflict" would let the shim share a packing made for
    one quantization with the other)."""
    backend = get_backend(name)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    images = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(4))
    with captured():
        calibrations = {"a": images, "b": 2 * images}
        graphs = {n: backend.quantize(export_batched(model.eval(), x), x)[0] for n, x in calibrations.items()}
        program = backend.compile_program(graphs, images[:1], backend.int8_quantizer())
    packing = backend.packing(program.data)
    assert packing.checked and len(packing.conflicts) == 1, packing

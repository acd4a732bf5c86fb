"""Both backends lower real stitched models in fp32 and int8, and their own runtimes reproduce eager."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from torch import nn

import restnetc.models.zoo  # noqa: F401  (registers the zoo_* architectures with timm)
from restnetc.backends import executorch_edge, get_backend, list_backends, pt2e, register_backend
from restnetc.backends.base import Ends, Lowered
from restnetc.backends.pt2e import export_batched
from restnetc.budget import measure
from restnetc.bundle.verification import Reference
from restnetc.config.target import Backend, Quantization
from restnetc.errors import RestnetcError
from restnetc.frontend.stitch import Interface, StitchedModel, StitchLayer, build_stitched
from restnetc.models import decompose, family_of, list_families
from restnetc.models.blocks import Layout
from restnetc.native_output import captured
from restnetc.runners import get_runtime, list_runtimes
from tests import zoo

PAIRS = {
    "cnn-cnn": ("resnet", "vgg", 1, 2),
    "vit-vit": ("vit", "deit-distilled", 1, 0),
    "cnn-swin": ("resnet", "swin", 1, 2),
    "lite-cnn": ("efficientnet-lite", "resnet", 2, 2),
}
# Bounds: fp32 artifacts match eager to float rounding; int8 ones keep the logits' direction and the top-1.
FP32_RELATIVE_ERROR = 1e-4
INT8_MIN_COSINE = 0.98
INT8_MIN_AGREEMENT = 0.75  # untrained tiny models have near-tied logits; the cosine bound is the strict one
# The int8 artifact computes what its PT2E simulation (the graph screening scores in eager) computes, up to
# the runtimes' own int8 kernels: measured worst (16 images), relative max error 0.079 and cosine 0.9953, both
# vit-vit on LiteRT (its LayerNorm, softmax and GELU); CNN pairs 0.014-0.028 and >= 0.9994.
SIMULATION_RELATIVE_ERROR = 0.1
SIMULATION_MIN_COSINE = 0.99


def test_the_pairs_lower_a_model_of_every_registered_family() -> None:
    """The simulation bounds below hold for every family the registry knows: a family registered without a model
    in ``PAIRS`` fails here. (Accuracy-level figures on trained models: ``benchmarks/simulation_gap.py``.)"""
    lowered = {family_of(zoo.make(name)) for front, back, _, _ in PAIRS.values() for name in (front, back)}
    assert lowered == set(list_families())


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine between corresponding rows of ``a`` and ``b`` (the build bounds their mean)."""
    return float(Reference(torch.from_numpy(b), "").cosines(a).min())


@pytest.fixture(scope="module", params=sorted(PAIRS))
def stitched(request: pytest.FixtureRequest) -> tuple[str, StitchedModel]:
    front, back, i, j = PAIRS[request.param]
    return request.param, build_stitched(decompose(zoo.make(front)), i, decompose(zoo.make(back, 1)), j, zoo.SIZE)


@pytest.mark.parametrize("quantization", [Quantization.FP32, Quantization.INT8])
@pytest.mark.parametrize("name", [Backend(name) for name in list_backends()])
def test_lowered_artifact_agrees_with_eager(
    stitched: tuple[str, StitchedModel], name: Backend, quantization: Quantization, tmp_path: Path
) -> None:
    pair, model = stitched
    backend = get_backend(name)
    inputs = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(inputs).numpy()
    with captured() as log:
        if quantization is Quantization.INT8:  # what ``lower`` does, keeping the simulated graph to compare
            graph, quantizer = backend.quantize(export_batched(model, inputs), inputs)
            with torch.no_grad():
                simulated = graph(inputs).numpy()
            lowered = backend.compile(graph, inputs[:1], quantizer)
        else:
            lowered = backend.lower(model, inputs[:1], quantization, calibration=inputs)
    assert "Traceback" not in log.text
    path = tmp_path / f"model{backend.suffix}"
    path.write_bytes(lowered.data)
    out = backend.runtime.load(path, threads=2)(inputs.numpy())
    assert out.shape == eager.shape and out.dtype == np.float32
    report = lowered.delegation
    assert report.partitions >= 1 and report.delegated_ops > 0, report
    # The operators read back from the file agree with what lowering reported of the delegation.
    operators = backend.operators(lowered.data, lowered.entry_point)
    delegate_calls = sum(n for op, n in operators.items() if op.startswith("delegate:"))
    if name is Backend.LITERT:  # every op is in the file: delegated or not
        assert sum(operators.values()) == report.delegated_ops + report.fallback_count, (operators, report)
    else:  # one call per partition, and at most a kernel call per op left out (emission drops aliases)
        kernel_calls = sum(n for op, n in operators.items() if not op.startswith(("delegate:", "xnnpack:")))
        assert delegate_calls == report.partitions, (operators, report)
        assert kernel_calls <= report.fallback_count, (operators, report)
        assert any(op.startswith("xnnpack:") for op in operators), operators  # the delegates' graphs are read
    with pytest.raises(RestnetcError, match="no-such-entry"):
        backend.operators(lowered.data, "no-such-entry")
    if quantization is Quantization.FP32:
        assert np.abs(out - eager).max() <= FP32_RELATIVE_ERROR * np.abs(eager).max(), pair
        return
    assert _cosine(out, eager) >= INT8_MIN_COSINE, (pair, _cosine(out, eager))
    assert (out.argmax(1) == eager.argmax(1)).mean() >= INT8_MIN_AGREEMENT, pair
    # Screening trusts the simulation: the runtime must not drift from it (LayerNorm, softmax and GELU in int8
    # kernels included), or choices scored on it would not hold in the artifact.
    gap = np.abs(out - simulated).max() / np.abs(simulated).max()
    assert gap <= SIMULATION_RELATIVE_ERROR, (pair, gap)
    assert _cosine(out, simulated) >= SIMULATION_MIN_COSINE, (pair, _cosine(out, simulated))
    fp32_bytes = sum(p.numel() for p in model.parameters()) * 4
    assert len(lowered.data) < fp32_bytes, "int8 weights take a quarter of fp32 (tiny models: plus fixed overhead)"
    # An int8 image model takes and returns float32, as MediaPipe and Android's tooling need.
    assert (lowered.input_quantization, lowered.output_quantization) == (None, None)


class _LiteBlocks(nn.Module):
    """EfficientNet-Lite's pattern: explicit pads, convolutions, ReLU6 and chained residual adds."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.ReLU6())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(8, 8, 3, groups=8), nn.ReLU6(), nn.Conv2d(8, 8, 1))
            for _ in range(2)
        )
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean((2, 3)))


def _lowered_both_ways(name: Backend, model: nn.Module) -> dict[Quantization, tuple[Lowered, dict[str, int]]]:
    """``model`` lowered by backend ``name`` in fp32 and int8, each with its operator counts."""
    backend = get_backend(name)
    inputs = torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    lowered = {}
    for quantization in (Quantization.FP32, Quantization.INT8):
        one = backend.lower(model, inputs[:1], quantization, calibration=inputs)
        lowered[quantization] = one, backend.operators(one.data, one.entry_point)
    return lowered


def test_litert_int8_graph_has_no_layout_or_requantize_ops_its_fp32_graph_lacks() -> None:
    """Fails when litert-torch keeps a pad between transposes or an add in float (``backends.litert_lean``), or
    when the float32 interface adds more than its two ops."""
    pairs = _lowered_both_ways(Backend.LITERT, _LiteBlocks().eval())
    lowered = {q: one for q, (one, _) in pairs.items()}
    counts = {q: ops for q, (_, ops) in pairs.items()}
    for op in ("TRANSPOSE", "PAD"):
        assert counts[Quantization.INT8].get(op, 0) <= counts[Quantization.FP32].get(op, 0), (op, counts)
    # One quantize at the float32 input and one dequantize at the float32 output (``litert_interface``).
    assert (counts[Quantization.INT8]["QUANTIZE"], counts[Quantization.INT8]["DEQUANTIZE"]) == (1, 1), counts
    assert lowered[Quantization.INT8].delegation.fallback_count == 0, lowered[Quantization.INT8].delegation
    assert [lowered[q].input_layout for q in lowered] == ["NHWC", "NHWC"]


def test_executorch_int8_graph_has_the_fp32_graphs_xnnpack_nodes_and_one_convert_at_each_end(tmp_path: Path) -> None:
    """Fails when a pad before a convolution runs in float inside the int8 delegate (``backends.executorch_lean``):
    it then sits between two ``Convert`` nodes (XNNPACK's quantize and dequantize) and cannot be fused; or when
    the int8 pads compute anything but the model (a pad of another value than the zero point)."""
    torch.manual_seed(0)
    model = _LiteBlocks().eval()
    pairs = _lowered_both_ways(Backend.EXECUTORCH, model)
    fp32, int8 = (Counter(ops) for _, ops in pairs.values())
    assert fp32["xnnpack:StaticConstantPad"] == 3 and "xnnpack:Convert" not in fp32, fp32
    converts = Counter({"xnnpack:Convert": 2 * fp32["delegate:XnnpackBackend"]})  # each delegate's input and output
    assert int8 == fp32 + converts, (int8, fp32)
    path = tmp_path / "int8.pte"
    path.write_bytes(pairs[Quantization.INT8][0].data)
    inputs = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = model(inputs).numpy()
    out = get_backend(Backend.EXECUTORCH).runtime.load(path, threads=1)(inputs.numpy())
    assert _cosine(out, eager) >= INT8_MIN_COSINE, _cosine(out, eager)


@pytest.mark.parametrize("quantization", [Quantization.FP32, Quantization.INT8])
def test_litert_runs_an_nchw_batch_on_its_nhwc_input_as_the_model_does(
    quantization: Quantization, tmp_path: Path
) -> None:
    """The ``.tflite`` takes ``[1, H, W, 3]`` and, being a classifier (convolutions, a global pool), needs no
    TRANSPOSE (an NCHW input costs one); its runner takes the NCHW batch every backend takes and reorders it. A
    non-square image and a kernel that is not symmetric in H and W catch a swapped or missing reorder."""
    backend = get_backend(Backend.LITERT)
    model = nn.Sequential(nn.Conv2d(3, 6, (3, 1)), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5))
    model = model.eval()
    images = torch.rand(8, 3, 12, 7, generator=torch.Generator().manual_seed(1))
    lowered = backend.lower(model, images[:1], quantization, calibration=images)
    (tmp_path / "m.tflite").write_bytes(lowered.data)
    program = backend.runtime.open(tmp_path / "m.tflite", threads=1)
    ran = program.load()(images.numpy())
    (source,) = program.signature(lowered.entry_point).get_input_details().values()  # type: ignore[attr-defined]
    assert list(source["shape"]) == [1, 12, 7, 3] and lowered.input_layout == "NHWC"
    assert "TRANSPOSE" not in backend.operators(lowered.data, lowered.entry_point)
    with torch.no_grad():
        expected = model(images).numpy()
    tolerance = 1e-4 if quantization is Quantization.FP32 else 0.1 * float(np.abs(expected).max())
    np.testing.assert_allclose(ran, expected, atol=tolerance)


@pytest.mark.parametrize("name", list_backends())
def test_int8_observes_a_convolution_followed_by_relu6_after_the_clamp(name: str) -> None:
    """The int8 range after conv + ReLU6 covers [0, 6], not the convolution's far wider output (the quantizers
    observe before the clamp unless ``pt2e.observe_after_clamps`` moves the observer)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.Conv2d(8, 4, 1)).eval()
    with torch.no_grad():
        model[0].weight *= 20  # outputs reach about +-60
    inputs = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    graph, _ = get_backend(name).quantize(export_batched(model, inputs), inputs)
    clamps = [n for n in graph.graph.nodes if n.target == torch.ops.aten.hardtanh.default]
    scales = [float(u.args[1]) for n in clamps for u in n.users if "quantize_per_tensor" in str(u.target)]
    assert len(clamps) == 1 and scales and max(scales) <= 6 / 127 * 1.05, (name, scales)


class _Residuals(nn.Module):
    """Two chained CNN residuals (convolutions read the sums), then a truncated transformer's: a LayerNorm
    reads the first sum, a slice (as a stitch does) the second, which adds onto the first."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(2))
        self.mix = nn.Conv2d(8, 16, 1)
        self.linear = nn.ModuleList(nn.Linear(16, 16) for _ in range(3))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.conv[0](x)
        x = self.mix(x + self.conv[1](x))
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.linear[0](tokens)
        tokens = tokens + self.linear[1](self.norm(tokens))
        return self.head(self.linear[2](tokens[:, 1:]).mean(1))  # type: ignore[no-any-return]


def _adds_annotated(
    name: str, model: nn.Module, inputs: torch.Tensor, rule: Callable[[torch.fx.GraphModule], None]
) -> list[bool]:
    """Whether each add of ``model`` keeps a quantization annotation after backend ``name``'s quantizer annotated
    every one of them (asserted) and ``rule`` took some off."""
    quantizer = get_backend(name).int8_quantizer()
    annotated = quantizer.transform_for_annotation(export_batched(model.eval(), inputs).module())
    quantizer.annotate(annotated)
    adds = [n for n in annotated.graph.nodes if n.target == torch.ops.aten.add.Tensor]
    assert all("quantization_annotation" in add.meta for add in adds), name
    rule(annotated)
    return ["quantization_annotation" in add.meta for add in adds]


@pytest.mark.parametrize("name", list_backends())
def test_int8_leaves_a_residual_stream_that_layernorm_reads_in_float(name: str) -> None:
    """Both quantizers annotate every add; ``pt2e.float_residual_streams`` takes the annotation off the
    transformer's sums only (the one LayerNorm reads and the one added onto it that a slice reads), and the int8
    graph then reads them unquantized. The CNN's sums, chained but never read by a LayerNorm, keep theirs."""
    inputs = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert _adds_annotated(name, _Residuals(), inputs, pt2e.float_residual_streams) == [True, True, False, False]
    backend = get_backend(name)
    graph, _ = backend.quantize(export_batched(_Residuals().eval(), inputs), inputs)
    adds = [n for n in graph.graph.nodes if n.target == torch.ops.aten.add.Tensor]
    rounded = [any("quantize_per_tensor" in str(user.target) for user in add.users) for add in adds]
    assert rounded[2:] == [False, False], (name, [(add.name, list(add.users)) for add in adds])
    (norm,) = (n for n in graph.graph.nodes if n.target == torch.ops.aten.layer_norm.default)
    assert norm.args[0] is adds[2]


class _Scores(nn.Module):
    """Attention whose scores get a bias and then, seen through reshapes, a mask added before their softmax (as
    timm's Swin does), followed by two residual adds that are no part of them: the first reads a matmul through a
    reshape, but no softmax reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.bias = nn.Parameter(torch.randn(6, 6))
        self.register_buffer("mask", torch.zeros(2, 6, 6).index_fill_(2, torch.tensor([0]), -100.0))
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, 2 windows, 6 tokens, 8 channels)
        q, k, v = self.qkv(x.flatten(0, 1)).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) + self.bias
        scores = (scores.view(x.shape[0], 2, 6, 6) + self.mask.unsqueeze(0)).view(-1, 6, 6)
        x = x + (scores.softmax(-1) @ v).view_as(x)
        return x + self.proj(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list_backends())
def test_int8_adds_to_attention_scores_in_float(name: str) -> None:
    """Both quantizers annotate every add; ``pt2e.float_attention_scores`` takes the annotation off the two added
    to the scores (the bias, and the mask through reshapes), and leaves the residual adds their own. Fails if the
    scores are rounded to int8 for an add (on LiteRT their matmul then became an int8 BATCH_MATMUL that its
    XNNPACK delegate refuses), or if an add elsewhere loses its quantization (one that reads a matmul but leads
    to no softmax, say)."""
    inputs = torch.randn(8, 2, 6, 8, generator=torch.Generator().manual_seed(0))
    assert _adds_annotated(name, _Scores(), inputs, pt2e.float_attention_scores) == [False, False, True, True]


class _TokenStitch(nn.Module):
    """A ViT -> ViT stitch (class token and patch tokens mapped by one linear layer's weight and bias, then joined
    by ``torch.cat``) between a front and a LayerNorm, as the back parent's first block reads it. The front is a
    linear layer, whose output the two token slices share the int8 parameters of, or a pre-norm residual stream
    (``stream``), left in float, so that each slice is quantized with its own."""

    def __init__(self, back_prefix_tokens: int, stream: bool) -> None:
        super().__init__()
        self.front = nn.Linear(16, 16)
        self.front_norm = nn.LayerNorm(16) if stream else None
        self.mix = nn.Linear(16, 16)
        tokens = Interface(Layout.TOKENS, (17, 16), prefix_tokens=1)
        self.stitch = StitchLayer(tokens, Interface(Layout.TOKENS, (16 + back_prefix_tokens, 24), back_prefix_tokens))
        self.norm = nn.LayerNorm(24)
        self.head = nn.Linear(24 * (16 + back_prefix_tokens), 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.front_norm is None:
            x = self.front(x)
        else:
            x = x + self.front(x)
            x = x + self.mix(self.front_norm(x))
        return self.head(self.norm(self.stitch(x)).flatten(1))  # type: ignore[no-any-return]


# 2 prefix tokens: the class token reaches the cat expanded, which no quantizer annotates: the cat stays float
@pytest.mark.parametrize("stream", [False, True], ids=["linear-front", "stream-front"])
@pytest.mark.parametrize("back_prefix_tokens", [1, 2])
@pytest.mark.parametrize("name", list_backends())
def test_int8_simulation_of_a_stitch_joining_tokens_of_unequal_ranges_is_what_the_runtime_computes(
    name: str, back_prefix_tokens: int, stream: bool, tmp_path: Path
) -> None:
    """A stitched DeiT's class token spans about a third of its patch tokens' range. An int8 concatenation takes
    one scale for both: the simulation must observe them as one tensor, or it joins them in float while the
    runtime clips the wider input. Measured: relative error 0.007 on both backends; 0.187 on LiteRT when
    ``LeanQuantizer`` leaves the cat unannotated. With a stream front, the two linear operators that share the
    stitch's weight and bias read inputs quantized apart; ExecuTorch's lowering must give each its own bias
    (``executorch._own_biases``), or the second adds a bias scaled for the other's input."""
    torch.manual_seed(0)
    model = _TokenStitch(back_prefix_tokens, stream).eval()
    inputs = torch.randn(32, 17, 16, generator=torch.Generator().manual_seed(1))
    inputs[:, 1:] *= 3  # patch tokens three times the class token's range
    backend = get_backend(name)
    graph, quantizer = backend.quantize(export_batched(model, inputs), inputs)
    with torch.no_grad():
        simulated = graph(inputs).numpy()
    lowered = backend.compile(graph, inputs[:1], quantizer, Ends(image_input=False))
    path = tmp_path / f"model{backend.suffix}"
    path.write_bytes(lowered.data)
    out = backend.runtime.load(path, threads=1)(inputs.numpy())
    gap = np.abs(out - simulated).max() / np.abs(simulated).max()
    assert gap <= SIMULATION_RELATIVE_ERROR / 2, (name, gap)


def test_litert_int8_observes_a_tensor_joined_with_itself_once() -> None:
    """``torch.cat([y, y])``: one edge per input, or the shared observer would be its own source and PT2E's
    preparation would recurse without end."""

    class _Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.second = nn.Linear(8, 8), nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.first(x)
            return self.second(torch.cat([y, y], dim=1))

    inputs = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    graph, _ = get_backend(Backend.LITERT).quantize(export_batched(_Twice().eval(), inputs), inputs)
    (cat,) = [n for n in graph.graph.nodes if n.target == torch.ops.aten.cat.default]
    assert all("quantize" in str(a.target) for a in cat.args[0]), "the cat joins int8 values"


def test_export_drops_zero_width_pads_and_keeps_the_values() -> None:
    """timm's Swin pads by zero to window and merge multiples; quantized, XNNPACK refuses those pads at load."""
    model = timm.create_model("zoo_swin_ti", depths=(2, 2, 2, 2)).eval()
    images = torch.randn(3, 3, 32, 32)
    exported = export_batched(model, images)
    pads = [n for n in exported.graph.nodes if n.op == "call_function" and "pad" in str(n.target)]
    assert all(any(n.args[1]) for n in pads), "a zero-width pad survived the export"
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(images), model(images))


def test_the_registry_holds_every_backend_the_target_schema_names_each_with_its_runtime() -> None:
    assert list_backends() == sorted(b.value for b in Backend) == list_runtimes()
    for name in list_backends():
        assert get_backend(name).name == name
        assert type(get_backend(name).runtime) is type(get_runtime(name))


def test_a_litert_memory_probe_runs_without_the_compiler_toolchain(tmp_path: Path) -> None:
    """The probe a build runs for every artifact imports the runtime alone (``restnetc.runners``): no torch, no
    converter. Fails if the probe goes through the compiling side (``restnetc.backends``), which took the probe
    process from about 0.2 s to 4 s per artifact."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "m.tflite"
    path.write_bytes(get_backend(Backend.LITERT).lower(model.eval(), images[:1], Quantization.INT8, images).data)
    script = (
        "import json, sys\n"
        "from restnetc.budget import memory_probe\n"
        f"memory_probe.main(['litert', {str(path)!r}, '1x3x16x16', '1'])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'litert_torch', 'torchao', 'timm'})\n"
        "print(json.dumps(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures, heavy = (line for line in done.stdout.splitlines() if line.startswith(("{", "[")))
    assert heavy == "[]", heavy
    assert measure.HostMemory.model_validate_json(figures).peak_delta > 0


def test_the_registry_rejects_a_second_backend_of_the_same_name_and_names_unknown_ones() -> None:
    with pytest.raises(ValueError, match="backend 'litert' is already registered"):
        register_backend("litert", lambda: get_backend("executorch"))
    with pytest.raises(ValueError, match="unknown backend 'coreml'; registered: executorch, litert"):
        get_backend("coreml")


@pytest.mark.parametrize("quantization", [Quantization.FP32, Quantization.INT8])
def test_litert_programs_name_only_their_ends(quantization: Quantization) -> None:
    """Every ``.tflite`` restnetc writes, one model's or a ladder program's (two signatures), fp32 or int8, names
    only its subgraphs' input and output tensors (``litert_compact.serialize``), and each signature still runs.
    Fails if the converter's inner names are kept (9% of a zoo DeiT-Ti's int8 file) or if an end loses its
    name."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    from restnetc.runners import litert as litert_runtime

    backend = get_backend(Backend.LITERT)
    images = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    graph: nn.Module = _LiteBlocks().eval()
    quantizer = None
    with captured():
        if quantization is Quantization.INT8:
            graph, quantizer = backend.quantize(export_batched(graph, images), images)
        programs = {
            (litert_runtime.SIGNATURE,): backend.compile(graph, images[:1], quantizer).data,
            ("one", "two"): backend.compile_program({"one": graph, "two": graph}, images[:1], quantizer).data,
        }
    for signatures, data in programs.items():
        for subgraph in flatbuffer_utils.convert_bytearray_to_object(bytearray(data)).subgraphs:
            named = {index for index, tensor in enumerate(subgraph.tensors) if tensor.name}
            assert named == {*map(int, subgraph.inputs), *map(int, subgraph.outputs)}, signatures
            assert len(subgraph.tensors) > len(named) + 10
        interpreter = Interpreter(model_content=data)
        assert sorted(interpreter.get_signature_list()) == list(signatures)
        for signature in interpreter.get_signature_list():
            runner = interpreter.get_signature_runner(signature)
            ((source_name, source),) = runner.get_input_details().items()
            assert runner(**{source_name: litert_runtime.input_for(images[:1].numpy(), source)})


def test_litert_float_interface_computes_the_int8_programs_logits_bit_for_bit() -> None:
    """``litert_interface.float_interface`` on the converter's int8-interface program: float32 in and out, the
    same tensor names, and exactly the logits of quantizing the input and dequantizing the output by hand. Fails
    on a wrong scale or zero point, a twin not wired into the signature, or an op out of place."""
    import litert_torch
    from ai_edge_litert.interpreter import Interpreter
    from litert_torch.quantize.quant_config import QuantConfig

    from restnetc.backends import litert
    from restnetc.backends.litert_interface import float_interface
    from restnetc.runners import litert as litert_runtime

    backend = get_backend(Backend.LITERT)
    images = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(3))
    graph, quantizer = backend.quantize(export_batched(_LiteBlocks().eval(), images), images)
    graph, example, _ = litert._channels_last(graph, images[:1])
    converted = litert_torch.convert(graph, (example,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    plain = litert._flatbuffer(converted, inputs=False, outputs=False)  # the converter's int8 interface
    edited = float_interface(plain)
    assert float_interface(edited) == edited, "a float32 interface is left as it is"
    outputs, names = [], []
    for data in (plain, edited):
        runner = Interpreter(model_content=data).get_signature_runner(litert_runtime.SIGNATURE)
        ((source_name, source),), ((sink_name, sink),) = (
            d.items() for d in (runner.get_input_details(), runner.get_output_details())
        )
        names.append((source_name, sink_name))
        out = runner(**{source_name: litert_runtime.input_for(images[:1].numpy(), source)})[sink_name]
        quantized = litert_runtime.quantization(sink)
        outputs.append(out if quantized is None else quantized.dequantize(out))
        assert (source["dtype"], sink["dtype"]) == ((np.int8, np.int8) if data is plain else (np.float32, np.float32))
    assert names[0] == names[1]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    # A part of a model keeps its inner end as the graph has it: here an int8 output (the stem's feature map).
    stem_program = Interpreter(model_content=float_interface(plain, outputs=False))
    stem = stem_program.get_signature_runner(litert_runtime.SIGNATURE)
    ((_, source),), ((_, sink),) = (d.items() for d in (stem.get_input_details(), stem.get_output_details()))
    assert (source["dtype"], sink["dtype"]) == (np.float32, np.int8)


def _quantization_vectors(data: bytes) -> list[tuple[int, bytes]]:
    """(position in ``data``, bytes) of every per-tensor scale and zero-point vector of every subgraph."""
    from ai_edge_litert import schema_py_generated as schema_fb

    model, found = schema_fb.Model.GetRootAs(data, 0), []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            q = subgraph.Tensors(t).Quantization()
            for field, values in ((8, "ScaleAsNumpy"), (10, "ZeroPointAsNumpy")):  # the schema's vtable slots
                if q is not None and (slot := q._tab.Offset(field)):
                    found.append((q._tab.Vector(slot), getattr(q, values)().tobytes()))
    return found


def test_every_litert_program_stores_each_repeated_vector_once_and_computes_the_same_logits(tmp_path: Path) -> None:
    """``litert_compact``: the backend's int8 program points every equal quantization vector (the all-zero
    per-channel zero points above all) at one copy, is smaller than the plain flatbuffer of the same model, and
    computes its logits exactly. Fails if a path writes a program without ``compact`` (two positions with one
    content), or if sharing breaks a field the interpreter reads."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    from restnetc.backends.litert_compact import compact

    images = torch.rand(16, 3, 12, 12, generator=torch.Generator().manual_seed(4))
    data = get_backend(Backend.LITERT).lower(_LiteBlocks().eval(), images[:1], Quantization.INT8, images).data
    plain = bytes(flatbuffer_utils.convert_object_to_bytearray(flatbuffer_utils.convert_bytearray_to_object(data)))
    assert compact(plain) == data and len(data) < len(plain)
    shared, repeated = _quantization_vectors(data), _quantization_vectors(plain)
    assert len({content for _, content in shared}) == len({position for position, _ in shared}) < len(shared)
    assert len({position for position, _ in repeated}) == len(repeated), "the plain flatbuffer repeats them"
    logits = []
    for program in (plain, data):
        runner = Interpreter(model_content=program).get_signature_runner()
        ((name, _),) = runner.get_input_details().items()
        logits.append(next(iter(runner(**{name: images[:1].permute(0, 2, 3, 1).numpy()}).values())))
    np.testing.assert_array_equal(logits[0], logits[1])


LITE_PIXELS = ((127 / 255,) * 3, (128 / 255,) * 3)
"""EfficientNet-Lite's ``(pixel - 127) / 128`` as mean and std on pixels in [0, 1]."""


def test_raw_pixels_are_the_normalisation_as_a_uint8_quantization_or_a_clear_refusal() -> None:
    """``raw_pixels``: scale 1 / (255 std) and zero point 255 mean, so a whole pixel quantizes to itself. Fails
    on a swapped scale, a zero point off by a pixel, or a per-channel normalisation let through."""
    from restnetc.backends import raw_pixels

    pixels = raw_pixels(*LITE_PIXELS)
    assert (pixels.dtype, pixels.scale, pixels.zero_point) == ("uint8", 1 / 128, 127)
    whole = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(pixels.quantize((whole - 127) / 128), whole.astype(np.uint8))
    with pytest.raises(ValueError, match="one mean and one std for every channel"):
        raw_pixels((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with pytest.raises(ValueError, match="255 x mean to be a whole number"):
        raw_pixels((0.5,) * 3, (0.5,) * 3)


def test_litert_uint8_pixels_compute_the_float_interfaces_logits_from_whole_pixels(tmp_path: Path) -> None:
    """An int8 program lowered with ``Ends(pixels=...)`` takes the raw pixels in uint8 NHWC under the project's
    normalisation, and computes the float32-interface program's logits from them; its runner quantizes a
    normalised batch back to those pixels. Fails on a wrong scale or zero point, a float32 input left in place,
    or a requantization into the int8 input that differs from quantizing the float pixels. Backends that cannot
    take raw pixels, and float programs, refuse them."""
    from restnetc.backends import WHOLE_MODEL, Ends, raw_pixels
    from restnetc.runners.litert import input_for

    backend, pixels = get_backend(Backend.LITERT), raw_pixels(*LITE_PIXELS)
    whole = torch.randint(0, 256, (16, 3, 12, 12), generator=torch.Generator().manual_seed(5)).float()
    images = (whole - 127) / 128
    model = _LiteBlocks().eval()
    for float_modules in ((), ("stem",)):  # a stem kept in float takes the pixels through a DEQUANTIZE
        lowered = {
            ends.pixels: backend.lower(model, images[:1], Quantization.INT8, images, float_modules, ends)
            for ends in (WHOLE_MODEL, Ends(pixels=pixels))
        }
        assert lowered[pixels].input_quantization == pixels and lowered[None].input_quantization is None
        logits = []
        for ends_pixels, artifact in lowered.items():
            path = tmp_path / f"{ends_pixels is None}.tflite"
            path.write_bytes(artifact.data)
            runner = backend.runtime.open(path, 1).signature("serving_default")
            ((_, source),) = runner.get_input_details().items()
            fed = input_for(images[:1].numpy(), source)
            assert fed.dtype == (np.float32 if ends_pixels is None else np.uint8)
            if ends_pixels is not None:
                np.testing.assert_array_equal(fed, whole[:1].permute(0, 2, 3, 1).numpy().astype(np.uint8))
            logits.append(backend.runtime.load(path, 1)(images.numpy()))
        np.testing.assert_array_equal(logits[0], logits[1])
    with pytest.raises(ValueError, match="raw uint8 pixels"):
        get_backend(Backend.EXECUTORCH).lower(model, images[:1], Quantization.INT8, images, ends=Ends(pixels=pixels))
    with pytest.raises(ValueError, match="a float program takes float32"):
        backend.lower(model, images[:1], Quantization.FP32, images, ends=Ends(pixels=pixels))


def _pool_threads() -> int:
    from executorch.extension.pybindings import portable_lib

    return int(portable_lib._threadpool_get_thread_count())


def test_a_fresh_process_claims_the_threads_of_a_runtime_sized_per_process() -> None:
    """ExecuTorch's pool is the process's: ``claim_threads`` sizes it in a fresh process (what the latency and
    memory probes do first), ``runs_on`` then says so; LiteRT sizes each program, so it runs on any count."""
    script = (
        "from restnetc.runners import get_runtime\n"
        "executorch, litert = get_runtime('executorch'), get_runtime('litert')\n"
        "other = 1 if executorch.runs_on(2) else 2\n"
        "assert not executorch.runs_on(other) and litert.runs_on(other)\n"
        "executorch.claim_threads(other)\n"
        "assert executorch.runs_on(other), other\n"
        "print('claimed', other)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0 and "claimed" in done.stdout, done.stderr[-2000:]


def test_latency_is_timed_on_the_threads_asked_in_a_fresh_process_when_this_ones_pool_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every registered backend's entry is timed; on this process's pool size the timing stays here, on another
    it moves to a child process that claims the threads, and this process's pool is left as it was."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    example = torch.randn(1, 3, 16, 16)
    entries = {}
    for name in list_backends():
        backend = get_backend(Backend(name))
        with captured():
            lowered = backend.lower(model.eval(), example, Quantization.FP32, calibration=example)
        path = tmp_path / f"model{backend.suffix}"
        path.write_bytes(lowered.data)
        entries[name] = measure.TimedEntry(name, path, example.numpy())
    children: list[list[str]] = []
    real_run = subprocess.run

    def watched(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        children.append(command)
        return real_run(command, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(measure.subprocess, "run", watched)
    here = _pool_threads()
    for threads, in_child in ((here, False), (3 - here if here <= 2 else 1, True)):
        children.clear()
        samples = measure.time_entries(entries, warmup=1, runs=3, threads=threads)
        assert {key: len(values) for key, values in samples.items()} == {name: 3 for name in entries}
        assert all(value > 0 for values in samples.values() for value in values)
        assert [c[2] for c in children] == (["restnetc.budget.latency_probe"] if in_child else []), threads
        assert _pool_threads() == here


@pytest.mark.parametrize("name", list_backends())
def test_each_program_is_timed_open_alone(name: str, tmp_path: Path) -> None:
    """``time_interleaved`` opens each program for its block and drops it before the next opens, so a runtime
    with a thread pool per program (LiteRT) times one pool, as a device running one rung does. Three entries are
    timed on two threads; at each call, the calls ``time_interleaved`` still holds are counted (one: any backend),
    and so are this process's threads (as many as with one program open: each open LiteRT program keeps a worker
    thread; ExecuTorch's pool is the process's). Fails if the programs stay open across blocks, if dropping a call
    leaves its LiteRT program open, or if any program is not timed ``runs`` times."""
    backend = get_backend(Backend(name))
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    example = torch.randn(1, 3, 16, 16)
    with captured():
        lowered = backend.lower(model, example, Quantization.FP32, calibration=example)
    path = tmp_path / f"model{backend.suffix}"
    path.write_bytes(lowered.data)
    open_program = measure.opener(measure.TimedEntry(name, path, example.numpy()), threads=2)

    def threads_now() -> int:
        return len(list(Path("/proc/self/task").iterdir()))

    held: list[int] = []  # calls opened and not yet dropped
    seen: list[tuple[int, int]] = []

    def watched() -> Callable[[], object]:
        invoke = open_program()

        def call() -> object:
            seen.append((len(held), threads_now()))
            return invoke()

        held.append(1)
        weakref.finalize(call, held.pop)
        return call

    gc.collect()  # nothing an earlier test left in a cycle is freed during the run
    invoke = open_program()
    invoke()
    alone = threads_now()
    del invoke
    samples = measure.time_interleaved({key: watched for key in "abc"}, warmup=1, runs=12)
    assert {key: len(values) for key, values in samples.items()} == {"a": 12, "b": 12, "c": 12}
    assert set(seen) == {(1, alone)}, (alone, sorted(set(seen)))


def test_executorch_layer_norm_is_delegated_without_moving_data(tmp_path: Path) -> None:
    """A layer norm runs as XNNPACK nodes that move no data: its means are fully connected layers of weight
    ``1/C`` (``executorch_edge.LayerNormAsLinear``), with no transpose, reshape or pooling node. Fails if it is
    spelled with views and global average pooling again (two transposes a mean), or if its eps (large here),
    weight or bias is lost."""
    model = nn.Sequential(nn.Linear(8, 24), nn.LayerNorm(24, eps=0.5)).eval()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(2))
        model[1].bias.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(3))
    inputs = torch.randn(1, 5, 8, generator=torch.Generator().manual_seed(1))
    backend = get_backend(Backend.EXECUTORCH)
    with captured():
        lowered = backend.compile(model, inputs, None)
    counts = backend.operators(lowered.data, "forward")
    moving = {
        op: n
        for op, n in counts.items()
        if op.split(":")[-1] in ("StaticTranspose", "StaticReshape", "GlobalAvgPooling2d")
    }
    assert (lowered.delegation.partitions, lowered.delegation.fallback_ops, moving) == (1, {}, {}), counts
    path = tmp_path / f"model{backend.suffix}"
    path.write_bytes(lowered.data)
    with torch.no_grad():
        expected = model(inputs).numpy()
    np.testing.assert_allclose(backend.runtime.load(path, threads=1)(inputs.numpy()), expected, rtol=0, atol=1e-5)


def _lowered_and_run(
    name: str, model: nn.Module, inputs: torch.Tensor, quantization: Quantization, tmp_path: Path
) -> tuple[Lowered, np.ndarray, np.ndarray]:
    """``model`` lowered by backend ``name`` in ``quantization`` (int8: calibrated on ``inputs``), what its runtime
    computes on ``inputs``, and what the graph it was compiled from (the model; the int8 simulation) computes."""
    backend = get_backend(name)
    with captured():
        if quantization is Quantization.INT8:
            graph, quantizer = backend.quantize(export_batched(model, inputs), inputs)
            lowered = backend.compile(graph, inputs[:1], quantizer)
        else:
            graph = model
            lowered = backend.compile(model, inputs[:1], None)
    path = tmp_path / f"model{backend.suffix}"
    path.write_bytes(lowered.data)
    out = backend.runtime.load(path, threads=1)(inputs.numpy())
    with torch.no_grad():
        expected = graph(inputs).numpy()
    return lowered, out, expected


def test_litert_runs_int8_gelu_in_float_inside_the_delegate(tmp_path: Path) -> None:
    """LiteRT's XNNPACK delegate takes GELU in float only: each int8 GELU of an int8 ViT is computed in float
    between its int8 tensors (``litert_float_ops``), so none is left to TFLite's own kernel, and the program still
    computes its simulation. Fails if the edit is dropped (the GELUs fall back: the zoo's DeiTs ran in 7
    partitions) or gets a tensor's quantization wrong (the logits move)."""
    model = decompose(zoo.make("vit")).eval()
    inputs = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(1))
    lowered, out, expected = _lowered_and_run(Backend.LITERT, model, inputs, Quantization.INT8, tmp_path)
    gelus = get_backend(Backend.LITERT).operators(lowered.data, lowered.entry_point).get("GELU", 0)
    assert (gelus, lowered.delegation.fallback_ops.get("GELU", 0)) == (len(model.blocks), 0), lowered.delegation
    assert np.abs(out - expected).max() <= SIMULATION_RELATIVE_ERROR * np.abs(expected).max()


class _Pooled(nn.Module):
    """A padded max pool after a convolution: with a ReLU between them (``relu``), without (``linear``), or with a
    ReLU and a pad of ones (``ones``)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu = nn.Identity() if kind == "linear" else nn.ReLU()
        self.pad = 1.0 if kind == "ones" else None
        self.pool = nn.MaxPool2d(3, 2, 0 if kind == "ones" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv(x))
        if self.pad is not None:
            x = nn.functional.pad(x, (1, 1, 1, 1), value=self.pad)
        return self.pool(x).flatten(1)  # type: ignore[no-any-return]


@pytest.mark.parametrize("quantization", [Quantization.FP32, Quantization.INT8])
@pytest.mark.parametrize("kind", ["relu", "linear", "ones"])
def test_litert_pads_a_max_pool_with_zeros_only_where_no_value_changes(
    kind: str, quantization: Quantization, tmp_path: Path
) -> None:
    """litert-torch pads a max pool with a PADV2 of -infinity, which LiteRT's XNNPACK delegate does not take;
    ``litert_pads`` makes it a PAD (zeros) when no value changes: after a ReLU. Without the ReLU, or padding with
    ones, the PADV2 stays, on TFLite's kernel. Fails if the edit is dropped, or made where zeros would win a window
    or lose one (the values move)."""
    relu = kind == "relu"
    inputs = torch.randn(16, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    lowered, out, expected = _lowered_and_run(Backend.LITERT, _Pooled(kind).eval(), inputs, quantization, tmp_path)
    operators = get_backend(Backend.LITERT).operators(lowered.data, lowered.entry_point)
    assert (operators.get("PAD", 0), operators.get("PADV2", 0)) == ((1, 0) if relu else (0, 1)), operators
    assert lowered.delegation.fallback_ops == ({} if relu else {"PADV2": 1}), lowered.delegation
    bound = FP32_RELATIVE_ERROR if quantization is Quantization.FP32 else SIMULATION_RELATIVE_ERROR / 10
    assert np.abs(out - expected).max() <= bound * np.abs(expected).max()


class _Rolls(nn.Module):
    """Rolls of every sign, size and dimension kind ``rolls_as_slices`` rewrites, and one it leaves (flattened)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.roll(x, shifts=(-2, 3), dims=(1, -1)) + torch.roll(x, shifts=(7, 0), dims=(2, 1))
        return y + torch.roll(x, shifts=5)


def test_rolls_as_slices_computes_what_roll_does() -> None:
    """Each roll over given dimensions becomes slices and a concatenation (no ``roll`` left but the flattened one)
    with the same values. Fails on a wrong cut (the direction of a shift, a shift past the size, a negative dim)."""
    x = torch.randn(2, 5, 6, 4, generator=torch.Generator().manual_seed(0))
    program = executorch_edge.rolls_as_slices(torch.export.export(_Rolls(), (x,)))
    rolls = [node for node in program.graph.nodes if node.target == torch.ops.aten.roll.default]
    assert [node.args[1:] for node in rolls] == [([5],)]
    torch.testing.assert_close(program.module()(x), _Rolls()(x), rtol=0, atol=0)


class _Means(nn.Module):
    """Means over pairs of dimensions of a 4-D tensor other than its last two, with and without kept dimensions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((1, 2)), x.mean((-3, 3), keepdim=True).flatten(1)], 1)


def test_means_over_other_dimensions_are_pooled_whole(tmp_path: Path) -> None:
    """Each mean over a pair of dimensions but (2, 3) is delegated (``executorch_edge.MeanAsPooling``) and computes
    what it did. Fails if such a mean is left to a portable kernel or its kept dimensions come out wrong."""
    x = torch.randn(1, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    backend = get_backend(Backend.EXECUTORCH)
    with captured():
        lowered = backend.compile(_Means(), x, None)
    assert (lowered.delegation.partitions, lowered.delegation.fallback_ops) == (1, {}), lowered.delegation
    path = tmp_path / f"means{backend.suffix}"
    path.write_bytes(lowered.data)
    np.testing.assert_allclose(backend.runtime.load(path, threads=1)(x.numpy()), _Means()(x).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("quantization", [Quantization.FP32, Quantization.INT8])
@pytest.mark.parametrize("family", sorted(zoo.FAMILIES))
@pytest.mark.parametrize("name", list_backends())
def test_delegates_every_family_whole(name: str, family: str, quantization: Quantization, tmp_path: Path) -> None:
    """Every op of every family's model runs in one XNNPACK partition, on every backend. In transformers, fused
    attention's masking ops (``decompose`` makes attention explicit) and, on ExecuTorch, no-op expands, squeezes,
    selects and layer norms, and in Swin rolls, the relative position bias's gather, aliases and the NHWC pooling
    head (``executorch_edge``) would each split it and run on portable kernels; on LiteRT, int8 GELUs
    (``litert_float_ops``), int8 attention matmuls (``pt2e.float_attention_scores``) and a max pool's padding
    (``litert_pads``) would. Fails when any of these is dropped (and VGG's head at 32 px if
    ``models.vgg.StretchToKernel`` is); the program must still compute what it was made from (those ops are
    rewritten by hand)."""
    model = decompose(zoo.make(family)).eval()
    inputs = torch.randn(16, 3, zoo.SIZE, zoo.SIZE, generator=torch.Generator().manual_seed(1))
    lowered, out, expected = _lowered_and_run(name, model, inputs, quantization, tmp_path)
    assert (lowered.delegation.partitions, lowered.delegation.fallback_ops) == (1, {}), lowered.delegation
    bound = FP32_RELATIVE_ERROR if quantization is Quantization.FP32 else SIMULATION_RELATIVE_ERROR
    assert np.abs(out - expected).max() <= bound * np.abs(expected).max()

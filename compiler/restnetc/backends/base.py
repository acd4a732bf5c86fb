"""The backend contract: lower a PyTorch model to an artifact; its ``runtime`` runs the artifact.

``lower`` (shared: support check, PT2E int8 quantization, then the backend's ``compile``) takes an eval-mode
model, an example input (batch of one, NCHW float32), a numeric format and calibration images, and returns
the artifact's bytes with a report of what the runtime's accelerated delegate took and what fell back (every
fallback op is named). ``runtime`` is the backend's run side (``restnetc.runners``): it opens an artifact
and returns a ``Runner`` that maps a float32 NCHW batch to float32 logits, converting to and from quantized
input/output tensors itself, or the bare inference call that latency measurements time. ``int8_quantizer``
returns the PT2E quantizer ``lower`` uses and ``quantize`` the int8 graph it compiles, so int8 choices can be
screened in eager PyTorch (simulated quantization) before paying for a lowering. Everything else (verification,
bundles, caching) is backend-agnostic and lives outside this package.
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends.pt2e import Observed, export_batched, quantize_pt2e
from restnetc.config.target import Quantization
from restnetc.errors import RestnetcError
from restnetc.runners import Runtime, get_runtime
from restnetc.shim_abi import ENTRY_POINT_PATTERN, InputLayout, TensorQuantization


@dataclass(frozen=True)
class DelegationReport:
    """How much of the graph the runtime's delegate runs, and which ops fell back to plain kernels."""

    delegate: str
    partitions: int
    delegated_ops: int
    fallback_ops: dict[str, int] = field(default_factory=dict)

    @property
    def fallback_count(self) -> int:
        return sum(self.fallback_ops.values())


@dataclass(frozen=True)
class Lowered:
    """A lowered artifact in memory."""

    data: bytes
    delegation: DelegationReport
    input_quantization: TensorQuantization | None
    output_quantization: TensorQuantization | None
    entry_point: str
    planned_memory: int | None = None
    """Bytes of activation memory the program plans ahead of time (runtimes that plan it: ExecuTorch)."""
    input_layout: InputLayout = "NCHW"
    """How the artifact's input tensor orders an image (NCHW also: as the example was given); its runner
    (``Program.load``) takes the example's layout whatever this is."""


@dataclass(frozen=True)
class EntryPoint:
    """One entry point of a lowered program (an ExecuTorch method, a TFLite signature) and what it reports."""

    name: str
    delegation: DelegationReport
    input_quantization: TensorQuantization | None
    output_quantization: TensorQuantization | None
    planned_memory: int | None = None
    """Bytes of activation memory the entry point plans ahead of time (runtimes that plan it: ExecuTorch)."""
    input_layout: InputLayout = "NCHW"
    """How the entry point's input tensor orders an image; its runner still takes NCHW."""


@dataclass(frozen=True)
class Packing:
    """Whether a runtime may pack each weight of a program once for all its entry points (XNNPACK's weight
    cache): only when the backend checked the file (``checked``) and found no ``conflicts``, each a place where
    entry points read one weight under different quantizations, in words."""

    checked: bool
    conflicts: tuple[str, ...] = ()

    @property
    def shared(self) -> bool:
        """True when the packings may be shared."""
        return self.checked and not self.conflicts


@dataclass(frozen=True)
class LoweredProgram:
    """One lowered file holding several models, each behind its own entry point; weights shared by the models
    (the same tensors, byte for byte) are stored once."""

    data: bytes
    entry_points: tuple[EntryPoint, ...]

    def entry(self, name: str) -> EntryPoint:
        """The entry point called ``name``; KeyError naming the program's entry points otherwise."""
        for entry in self.entry_points:
            if entry.name == name:
                return entry
        raise KeyError(f"no entry point {name!r}; the program has {', '.join(e.name for e in self.entry_points)}")


@dataclass(frozen=True)
class Ends:
    """Which ends of a graph are its model's own: the input an NCHW image batch, the output the logits.

    A model's own ends take the forms the runtime's tooling expects (LiteRT: an NHWC image, float32 in and out
    of an int8 program); an inner end (a part of a model, profiled alone: a feature map) stays exactly as the
    graph has it, so that parts chain as they do inside the model."""

    image_input: bool = True
    logits_output: bool = True
    pixels: TensorQuantization | None = None
    """With an image input of an int8 program: raw 0-255 pixels in uint8 under this quantization (``raw_pixels``)
    instead of float32 normalised ones. LiteRT takes them; ExecuTorch programs take float32 only."""


WHOLE_MODEL = Ends()
"""Both ends the model's own, the image input float32: what every shipped artifact is by default."""


def ops_run(counts: Mapping[str, int]) -> int:
    """How many operators an entry point runs, from its ``Backend.operators`` counts: every one counted but a
    ``delegate:<id>`` call, whose graph's nodes are counted themselves where the file holds them (ExecuTorch's
    XNNPACK graphs, as ``xnnpack:<node>``), so the totals of both runtimes compare."""
    return sum(n for name, n in counts.items() if not name.startswith("delegate:"))


PIXEL_SLACK = 0.05
"""How far from a whole pixel level 255 x mean may be for ``raw_pixels``: a tenth of the half level every uint8
input is rounded by anyway (a mean written as 0.498 for 127 / 255 is 0.01 off)."""


def raw_pixels(mean: Sequence[float], std: Sequence[float]) -> TensorQuantization:
    """The uint8 quantization under which raw 0-255 pixels are the normalised input ``(pixel / 255 - mean) / std``
    (``mean`` and ``std`` per channel, on pixels in [0, 1]): scale ``1 / (255 std)``, zero point ``255 mean``.

    ValueError unless every channel has the same mean and the same std, and 255 x mean is a whole number in
    0..255 (within ``PIXEL_SLACK``): a tensor has one scale and one integer zero point."""
    if len(set(mean)) != 1 or len(set(std)) != 1:
        raise ValueError(f"a uint8 input needs one mean and one std for every channel, got mean {mean}, std {std}")
    zero_point = 255 * mean[0]
    if abs(zero_point - round(zero_point)) > PIXEL_SLACK or not 0 <= round(zero_point) <= 255:
        raise ValueError(f"a uint8 input needs 255 x mean to be a whole number in 0..255, got {zero_point:.6g}")
    return TensorQuantization("uint8", 1 / (255 * std[0]), round(zero_point))


@dataclass(frozen=True)
class ModelCard:
    """What a runtime's tooling is told about an image classifier beside its program.

    ``mean`` and ``std`` are the model's per-channel ``(pixel - mean) / std`` with pixels in [0, 1], as the
    project's normalisation; ``labels`` name the output's classes in order."""

    name: str
    description: str
    labels: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def per_channel(self) -> bool:
        """Whether channels are normalised differently (MediaPipe's tasks then refuse the model)."""
        return len(set(self.mean)) > 1 or len(set(self.std)) > 1


def check_entry_points(names: Iterable[str]) -> None:
    """ValueError unless ``names`` are at least one, distinct, and each one the shim can read
    (``shim_abi.ENTRY_POINT_PATTERN``)."""
    names = list(names)
    bad = [name for name in names if not re.fullmatch(ENTRY_POINT_PATTERN, name)]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(
            f"entry point names must be distinct and match {ENTRY_POINT_PATTERN} (the shim's index), got {names}"
        )


class Backend(ABC):
    """The compiling side of one runtime. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    suffix: ClassVar[str]
    quantizations: ClassVar[frozenset[Quantization]]
    fold_quantize: ClassVar[bool]
    """Whether the backend's converter wants PT2E weights folded to int8 (True) or kept as q/dq (False)."""

    def lower(
        self,
        model: nn.Module,
        example: torch.Tensor,
        quantization: Quantization,
        calibration: torch.Tensor,
        float_modules: Sequence[str] = (),
        ends: Ends = WHOLE_MODEL,
    ) -> Lowered:
        """Lower ``model`` for inputs shaped like ``example``.

        For int8, activations are calibrated on ``calibration`` (``[N, 3, S, S]``, real images of the task);
        submodules named in ``float_modules`` (dotted names in ``model``) are left in float. ``ends`` as for
        ``compile``.
        """
        self.check_supported(quantization)
        if quantization is not Quantization.INT8:
            return self.compile(model, example, None, ends)
        graph, quantizer = self.quantize(export_batched(model, calibration), calibration, float_modules)
        return self.compile(graph, example, quantizer, ends)

    def quantize(
        self,
        exported: torch.export.ExportedProgram,
        calibration: torch.Tensor,
        float_modules: Sequence[str] = (),
        observed: Observed | None = None,
        corrected: Mapping[str, torch.Tensor] | None = None,
    ) -> tuple[nn.Module, Quantizer]:
        """The int8 graph ``lower`` compiles (``exported`` from ``export_batched``), and its quantizer.

        It runs in eager PyTorch with int8 simulated, so choices can be scored before they are compiled.
        ``observed``: this backend's calibrated observers of the same export (``pt2e.observe``), reused;
        ``corrected``: this very graph's corrected biases, stored before (``pt2e.quantize_pt2e``).
        """
        quantizer = self.int8_quantizer()
        graph = quantize_pt2e(exported, quantizer, calibration, float_modules, self.fold_quantize, observed, corrected)
        self.refine(graph, quantizer)
        return graph, quantizer

    def refine(self, graph: torch.fx.GraphModule, quantizer: Quantizer) -> None:
        """Rewrite ``graph``, converted with ``quantizer`` (one of ``int8_quantizer``'s), in place into the form this
        backend compiles best, changing no value it computes (the simulation stays the program's). This default
        leaves it as converted."""
        return None

    @abstractmethod
    def compile(
        self, graph: nn.Module, example: torch.Tensor, quantizer: Quantizer | None, ends: Ends = WHOLE_MODEL
    ) -> Lowered:
        """Turn a float model, or a PT2E-quantized graph made with ``quantizer``, into the artifact.

        ``ends``: which ends are the model's own (``Ends``). An image input may be taken in the runtime's own
        layout (``Lowered.input_layout``; the runner still takes NCHW) and type, logits may be returned in the
        runtime's own type; an inner end is taken or returned exactly as the graph has it. ``ends.pixels`` needs
        an int8 graph and a backend that takes raw pixels (ValueError otherwise)."""

    @abstractmethod
    def compile_program(
        self,
        graphs: Mapping[str, nn.Module],
        example: torch.Tensor,
        quantizer: Quantizer | None,
        pixels: TensorQuantization | None = None,
    ) -> LoweredProgram:
        """Turn several whole models (``example`` an NCHW image batch, as ``compile`` of ``WHOLE_MODEL``) into one file
        with an entry point per name, in the order given.

        The models are float, or each PT2E-quantized on its own with quantizers configured like ``quantizer``
        (as ``quantize`` makes them): one calibration per model, so each keeps its own scales. Names pass
        ``check_entry_points`` (ValueError otherwise). Running entry point ``name`` computes what ``compile``
        of ``graphs[name]`` computes, bit for bit (with ``pixels`` as ``Ends.pixels``: every entry point's image
        input then takes raw uint8 pixels).
        """

    def packing(self, data: bytes) -> Packing:
        """Whether the runtime may pack each weight of the program ``data`` once for all its entry points. This
        default checks nothing, so such programs are never shared."""
        return Packing(checked=False)

    def describe(self, data: bytes, card: ModelCard) -> bytes:
        """The single-model artifact ``data`` with ``card`` stored where the runtime's own tooling reads it
        (LiteRT: TFLite metadata); what it computes is unchanged. Call it only when ``card_writer`` names a
        writer (RestnetcError otherwise, naming what is missing)."""
        raise RestnetcError(f"{self.name}: artifacts have no place for a model card")

    def card_writer(self) -> str | None:
        """The tool and version ``describe`` writes with here (part of a described artifact's cache key), or None
        when it cannot: the runtime has no place for a card, or its tool is missing (``describe_missing``)."""
        return None

    def describe_missing(self) -> str | None:
        """What to install so that ``describe`` can write a card where the runtime has a place for one, or None."""
        return None

    @abstractmethod
    def int8_quantizer(self) -> Quantizer:
        """A fresh PT2E quantizer configured as ``lower`` configures it for int8."""

    @functools.cached_property
    def runtime(self) -> Runtime:
        """The runtime that opens and runs this backend's artifacts in this process (``restnetc.runners``), made
        on first use and kept by this backend instance."""
        return get_runtime(self.name)

    def check_supported(self, quantization: Quantization) -> None:
        """Raise a clear error if this backend cannot produce ``quantization``."""
        if quantization not in self.quantizations:
            supported = ", ".join(sorted(q.value for q in self.quantizations))
            raise RestnetcError(f"{self.name}: {quantization.value} is not supported (use one of: {supported})")

    @abstractmethod
    def operators(self, data: bytes, entry_point: str) -> dict[str, int]:
        """How many times entry point ``entry_point`` of the artifact ``data`` calls each operator, counted from
        the file itself, by the runtime's own operator name (RestnetcError if it has no such entry point).

        What the file holds differs by runtime: a LiteRT subgraph lists every op (its delegate is applied when
        it loads); an ExecuTorch method lists the kernels it calls outside delegates and one ``delegate:<id>``
        per call into a delegate's compiled graph, plus, for each XNNPACK call, the nodes of the graph it runs
        as ``xnnpack:<node type>`` (XNNPACK may still fuse some when it loads: a pad into its convolution)."""

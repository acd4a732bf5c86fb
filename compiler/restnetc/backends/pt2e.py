"""Post-training int8 quantization with PT2E, shared by every backend that consumes a PT2E graph."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer, SharedQuantizationSpec

from restnetc.backends.bias_correction import (
    BIAS_IMAGES,
    Means,
    correct_biases,
    layer_biases,
    layer_means,
    set_biases,
)

_log = logging.getLogger(__name__)


def _within(path: str, module: str) -> bool:
    """Whether the module at dotted ``path`` is ``module`` or one of its children."""
    return path == module or path.startswith(module + ".")


def _inside(node: torch.fx.Node, modules: Sequence[str]) -> bool:
    """Whether ``node`` was traced from one of ``modules`` (dotted names) or their children."""
    paths = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
    return any(_within(path, name) for path in paths for name in modules)


def _shares_with_float(node: torch.fx.Node) -> bool:
    """Whether ``node``'s annotation shares quantization parameters with a node or edge left unannotated."""
    annotation = node.meta["quantization_annotation"]
    for spec in (*annotation.input_qspec_map.values(), annotation.output_qspec):
        if not isinstance(spec, SharedQuantizationSpec):
            continue
        target = spec.edge_or_node
        if isinstance(target, tuple):  # an input edge (producer, consumer): the consumer's annotation owns it
            owner = target[1].meta.get("quantization_annotation")
            if owner is None or target[0] not in owner.input_qspec_map:
                return True
        elif "quantization_annotation" not in target.meta:
            return True
    return False


def _is_tensor(node: torch.fx.Node) -> bool:
    return isinstance(node.meta.get("val"), torch.Tensor)


def annotation_of(node: torch.fx.Node) -> QuantizationAnnotation | None:
    """``node``'s quantization annotation, if a quantizer gave it one."""
    annotation = node.meta.get("quantization_annotation")
    return annotation if isinstance(annotation, QuantizationAnnotation) else None


_CLAMPED = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
"""Ops whose output a following fusable clamp bounds: both runtimes fuse the clamp into them."""


def _fusable_clamp(node: torch.fx.Node) -> bool:
    """Whether ``node`` is a hardtanh both runtimes fuse into the op before it: ReLU6 (0, 6) or (-1, 1)."""
    if node.target != torch.ops.aten.hardtanh.default:
        return False
    low = node.args[1] if len(node.args) > 1 else node.kwargs.get("min_val", -1.0)
    high = node.args[2] if len(node.args) > 2 else node.kwargs.get("max_val", 1.0)
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return False
    return (float(low), float(high)) in ((0.0, 6.0), (-1.0, 1.0))


def _shared_elsewhere(model: torch.fx.GraphModule, node: torch.fx.Node, besides: torch.fx.Node) -> bool:
    """Whether an annotation other than ``besides``'s shares ``node``'s output parameters."""
    for other in model.graph.nodes:
        annotation = annotation_of(other)
        if other is besides or annotation is None:
            continue
        for spec in (*annotation.input_qspec_map.values(), annotation.output_qspec):
            if isinstance(spec, SharedQuantizationSpec):
                target = spec.edge_or_node
                if target is node or (isinstance(target, tuple) and target[0] is node):
                    return True
    return False


def observe_after_clamps(model: torch.fx.GraphModule) -> None:
    """Move the output observer of each convolution or linear layer followed only by a fusable clamp (ReLU6)
    onto the clamp, so the int8 range covers what the clamp lets through, and conv + clamp is one int8 op.

    Neither the XNNPACK nor the litert-torch quantizer does it (both fuse ReLU only): they observe the conv's
    output before the clamp, and the clamp shares that observer. On EfficientNet-Lite0 the all-int8 logits' SQNR
    against fp32 goes from 6.3 to 15.0 dB (ExecuTorch) with this move (``benchmarks/RESULTS.md`` section 10).
    """
    for node in model.graph.nodes:
        source = node.args[0] if node.op == "call_function" and node.args else None
        if not isinstance(source, torch.fx.Node) or source.target not in _CLAMPED or len(source.users) != 1:
            continue
        before = annotation_of(source)
        if not _fusable_clamp(node) or before is None or before.output_qspec is None:
            continue
        if not _shared_elsewhere(model, source, node):
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                output_qspec=before.output_qspec, _annotated=True
            )
            before.output_qspec = None


_ADDS = (torch.ops.aten.add.Tensor, torch.ops.aten.add_.Tensor)
"""A residual connection's add as an export spells it (out of place, or in place as ResNet's ``+=``)."""

_NORMS = (torch.ops.aten.layer_norm.default, torch.ops.aten.native_layer_norm.default)
"""LayerNorm as an export spells it; neither quantizer annotates it, so it always reads its input in float."""


def read_by_layernorm(node: torch.fx.Node) -> bool:
    """Whether ``node`` is an add a LayerNorm reads directly: where ``float_residual_streams`` starts."""
    return node.target in _ADDS and any(user.target in _NORMS for user in node.users)


def float_residual_streams(model: torch.fx.GraphModule) -> None:
    """Leave a pre-norm transformer's residual stream (ViT, DeiT) in float: each add that a LayerNorm reads
    directly, and each add that adds onto a float one, down the chain (a truncated front's last add, which a
    stitch reads in place of the next block's LayerNorm). An add stays float even when another reader would read
    it in int8; that reader then quantizes its own input (a ViT stitch's two token slices each get their own
    parameters).

    Both quantizers annotate every add, so the stream was rounded to int8 after every block, each add rounding
    again, only for LayerNorm to read it back in float. Measured on the DeiT-S -> DeiT-Ti rungs, int8 simulated
    as a build lowers them and run in their runtimes, 10,000 test images (``benchmarks/RESULTS.md`` section 10),
    this rule against none: +0.53 points (p = 0.006) on the stitch that lost most (ExecuTorch 01-01), 0.00 to
    +0.27 on the other seven artifacts; against the LayerNorm-read adds alone (the stitch's input rounded):
    +0.35 (p = 0.03) there, -0.02 to +0.18 elsewhere; parents unchanged. Not covered: an add that LayerNorm reads
    through a reshape or permute (timm's Swin blocks), which stays int8. A CNN's adds keep their annotation,
    chained or not: none is read by a LayerNorm, so its int8 graph keeps them in int8 between its convolutions.
    """
    stream: set[torch.fx.Node] = set()
    for node in model.graph.nodes:  # topological: an add's inputs are classified before it
        if node.target not in _ADDS:
            continue
        if read_by_layernorm(node) or stream.intersection(node.all_input_nodes):
            stream.add(node)
            node.meta.pop("quantization_annotation", None)


_SCORES = (torch.ops.aten.matmul.default, torch.ops.aten.bmm.default)
"""An attention's scores (``q @ k.T``) as an export spells them."""

_SOFTMAXES = (torch.ops.aten.softmax.int, torch.ops.aten._softmax.default)
"""A softmax as an export spells it: where attention's scores end."""

_VIEWS = (
    torch.ops.aten.view.default,
    torch.ops.aten.reshape.default,
    torch.ops.aten.unsqueeze.default,
    torch.ops.aten.squeeze.dim,
)
"""Ops that only reshape a tensor, which ``float_attention_scores`` reads through."""


def _reaches_scores(node: torch.fx.Node, seen: dict[torch.fx.Node, bool]) -> bool:
    """Whether ``node`` is an attention's scores (a matmul) or reads them through adds and reshapes; each node
    visited is recorded in ``seen`` with its answer (so each is visited once)."""
    if node not in seen:
        seen[node] = False  # an export's graph has no cycle; this only stops a second visit
        if node.target in _SCORES:
            seen[node] = True
        elif node.target in _VIEWS and isinstance(node.args[0], torch.fx.Node):
            seen[node] = _reaches_scores(node.args[0], seen)
        elif node.target in _ADDS:
            seen[node] = any([_reaches_scores(operand, seen) for operand in node.all_input_nodes])
    return seen[node]


def float_attention_scores(model: torch.fx.GraphModule) -> None:
    """Leave in float each add between an attention's scores and their softmax: a relative position bias, a
    shifted window's mask (timm's Swin).

    Neither quantizer annotates the matmul or the softmax, so both read and write float; both annotate every
    add, so the scores were rounded to int8 for the add alone. On LiteRT it cost more than the rounding: the
    converter fuses ``dequantize -> matmul -> quantize`` into an int8 BATCH_MATMUL whose second operand (k)
    keeps its asymmetric zero point, which ai-edge-litert 2.3.0's XNNPACK delegate refuses ("non-zero zero
    point"), so each such matmul ran on TFLite's own kernel between two partitions (the zoo's Swin-Ti: 11 of 12,
    12 partitions). With the adds in float the matmuls stay float and are delegated, as a DeiT's are.
    """
    seen: dict[torch.fx.Node, bool] = {}
    for node in model.graph.nodes:
        if node.target in _SOFTMAXES and isinstance(node.args[0], torch.fx.Node):
            _reaches_scores(node.args[0], seen)
    for node, scores in seen.items():
        if scores and node.target in _ADDS:
            node.meta.pop("quantization_annotation", None)


class _Annotations(Quantizer):  # type: ignore[misc]
    """Wraps a backend's quantizer: observes after fusable clamps (``observe_after_clamps``), leaves a
    pre-norm transformer's residual stream (``float_residual_streams``) and what is added to its attention
    scores (``float_attention_scores``) in float, keeps the given submodules in float and never observes a
    symbolic size.

    Neither the XNNPACK nor the litert-torch quantizer accepts "no config" for a module name, so the
    exclusion is done here, on the annotated graph, for every backend alike. With a dynamic batch, shape
    arithmetic (``sym_size`` times an int) gets annotated by litert-torch's quantizer; observers take tensors
    only, so integer nodes and edges are left unquantized.
    """

    def __init__(self, inner: Quantizer, float_modules: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.float_modules = tuple(float_modules)

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = self.inner.annotate(model)
        observe_after_clamps(model)
        float_residual_streams(model)  # before the float modules: the same adds go float whichever are kept
        float_attention_scores(model)
        annotated = [n for n in model.graph.nodes if "quantization_annotation" in n.meta]
        for node in annotated:
            if _inside(node, self.float_modules) or not _is_tensor(node):
                del node.meta["quantization_annotation"]
                continue
            annotation = node.meta["quantization_annotation"]
            annotation.input_qspec_map = {k: v for k, v in annotation.input_qspec_map.items() if _is_tensor(k)}
        # Neighbours that share an observer with a float node (a residual add, a concat) go float too.
        while dangling := [n for n in annotated if "quantization_annotation" in n.meta and _shares_with_float(n)]:
            for node in dangling:
                del node.meta["quantization_annotation"]
        return model

    def validate(self, model: torch.fx.GraphModule) -> None:
        self.inner.validate(model)

    def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        return self.inner.transform_for_annotation(model)  # type: ignore[no-any-return]


CALIBRATION_BATCH = 64


def export_batched(model: nn.Module, images: torch.Tensor) -> torch.export.ExportedProgram:
    """Export ``model`` with a dynamic batch dimension, so calibration and simulation run in batches.

    The artifact that ships is exported again from the quantized graph with a static batch of one.
    """
    example = images[:2] if len(images) >= 2 else images.expand(2, *images.shape[1:])
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    return _drop_noop_pads(torch.export.export(model, (example,), dynamic_shapes=({0: batch},)))


_PADS = (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default)


def _drop_noop_pads(exported: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """Remove pads of zero width (timm's Swin pads to window and merge multiples even when nothing is missing).

    Quantized, XNNPACK refuses them when the program loads (``StaticConstantPad ... invalid_parameter``), so
    an int8 Swin would lower but never run. Removing them changes no value.
    """
    graph = exported.graph_module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target in _PADS and not any(node.args[1]):
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    exported.graph_module.recompile()
    return exported


def _calibrate(prepared: torch.fx.GraphModule, calibration: torch.Tensor) -> None:
    with torch.no_grad():
        for batch in calibration.split(CALIBRATION_BATCH):
            prepared(batch)


@dataclasses.dataclass(frozen=True)
class Donor:
    """A model whose modules a quantized model runs too (a stitched rung's back parent), and which are they.

    ``modules`` maps a module path of the quantized model to the path of the same module in ``model``, e.g.
    ``{"back_blocks.0": "blocks.5", "head": "head"}``; a path maps with everything below it.
    """

    model: nn.Module
    modules: Mapping[str, str]

    def rename(self, path: str) -> str | None:
        """``path``'s counterpart in ``model``, or None when it lies outside every shared module."""
        for own, theirs in self.modules.items():
            if _within(path, own):
                return theirs + path[len(own) :]
        return None


@dataclasses.dataclass(frozen=True)
class Observed:
    """An export's calibrated observers (``graph``: prepared, float) and what bias correction reads: the float
    model's layer means on the first ``BIAS_IMAGES`` calibration images, and the biases that layers of modules
    shared with a donor take from the donor's own corrected graph (by node name)."""

    graph: torch.fx.GraphModule
    means: Means
    biases: Mapping[str, torch.Tensor]


def observe(
    exported: torch.export.ExportedProgram,
    quantizer: Quantizer,
    calibration: torch.Tensor,
    donor: Donor | None = None,
    source: Observed | None = None,
    source_biases: Mapping[str, torch.Tensor] | None = None,
) -> Observed:
    """A copy of ``exported`` with every observer ``quantizer`` asks for, calibrated on ``calibration``.

    Calibration runs the float model, so what an observer sees does not depend on which other parts are
    quantized: these observers serve every choice of float modules (see ``quantize_pt2e``'s ``observed``).

    With a ``donor``, every value computed inside a module shared with it takes the quantization parameters the
    donor's own calibration (same images, same quantizer) gives it (``adopt``), and every layer there takes the
    bias the donor's own bias correction gives it: the shared modules then quantize to the donor's bytes
    (weights, and biases, which follow the input's scale), so runtimes can store and pack them once for both.
    The value entering them from elsewhere (a stitching layer's output), when only they read it, takes the range
    the donor gives the input of those modules: the stitch is trained to reproduce that input, and the first
    layer after it then packs as the donor's does too. A layer whose input keeps its own quantization keeps its
    own bias.

    ``source``: the donor's own observation (``observe`` of its export, same quantizer and calibration), and
    ``source_biases`` the biases of its all-int8 graph (``layer_biases``), when they are at hand; else they are
    made here.
    """
    prepared: torch.fx.GraphModule = prepare_pt2e(exported.module(), _Annotations(quantizer, ()))
    _calibrate(prepared, calibration)
    images = calibration[:BIAS_IMAGES]
    biases: dict[str, torch.Tensor] = {}
    if donor is not None:
        if source is None:
            source = observe(export_batched(donor.model, calibration), quantizer, calibration)
        adoption = adopt(source.graph, prepared, donor.rename)
        if adoption.unmatched:
            _log.warning(
                "%d values of shared modules keep their own quantization: %s",
                len(adoption.unmatched),
                adoption.unmatched,
            )
        if adoption.kept:
            _log.info("values entering shared modules keep their own range: %s", adoption.kept)
        corrected = all_int8_biases(source, images) if source_biases is None else source_biases
        sites = _sites(source.graph, lambda path: path).items()
        theirs = {site: corrected[node.name] for node, site in sites if node.name in corrected}
        ours = _sites(prepared, donor.rename)
        biases = {  # only where the layer reads its input under the donor's quantization
            node.name: theirs[site]
            for node, site in ours.items()
            if site in theirs and _input_observer(node) in adoption.adopted
        }
    return Observed(prepared, layer_means(copy.deepcopy(prepared), images), biases)


def observed_tensors(observed: Observed) -> dict[str, torch.Tensor]:
    """``observed`` as flat tensors to store: each observer's state by observer name, the float means and the
    donor's biases by node name (``restore_observed`` makes it again on the same export)."""
    tensors = {
        f"observer:{_identity(watched, name, observer)}:{key}": state
        for watched, name, observer in _observers(observed.graph)
        for key, state in observer.state_dict().items()
    }
    tensors |= {f"mean:{node}": value for node, value in observed.means.items()}
    return tensors | {f"bias:{node}": value for node, value in observed.biases.items()}


def _identity(value: torch.fx.Node, name: str, observer: nn.Module) -> str:
    """An observer's name, the value it watches and its class, as ``observed_tensors`` keys them."""
    return f"{name}/{value.name}/{type(observer).__name__}"


def restore_observed(
    exported: torch.export.ExportedProgram, quantizer: Quantizer, tensors: Mapping[str, torch.Tensor]
) -> Observed | None:
    """The ``Observed`` that ``observed_tensors`` stored, made again on ``exported`` (the same export, from the
    same model and calibration images, with the same quantizer configuration) without calibrating: its graph
    quantizes to the very bytes the original does. None when the stored observers are not the ones ``exported``
    gets (each by name, watched value and class, with the same state entries): the caller then calibrates."""
    prepared: torch.fx.GraphModule = prepare_pt2e(exported.module(), _Annotations(quantizer, ()))
    states: dict[str, dict[str, torch.Tensor]] = {}
    means: Means = {}
    biases: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        kind, _, name = key.partition(":")
        if kind == "observer":
            owner, _, buffer = name.partition(":")
            states.setdefault(owner, {})[buffer] = value
        else:
            (means if kind == "mean" else biases)[name] = value
    observers = {_identity(value, name, observer): observer for value, name, observer in _observers(prepared)}
    if states.keys() != observers.keys():
        return None
    for name, observer in observers.items():
        if states[name].keys() != observer.state_dict().keys() or not states[name].keys() <= observer._buffers.keys():
            return None
        observer._buffers.update(states[name])
    return Observed(prepared, means, biases)


def all_int8_biases(observed: Observed, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The biases of ``observed``'s all-int8 graph after bias correction on ``images`` (the first
    ``BIAS_IMAGES`` calibration images), by node name: those of ``quantize_pt2e``'s graph with no float modules
    (weights left as quantize/dequantize pairs here: folding them changes no value)."""
    converted = convert_pt2e(copy.deepcopy(observed.graph), fold_quantize=False)
    correct_biases(converted, observed.means, images, observed.biases)
    return layer_biases(converted)


def _is_observer(node: object) -> bool:
    """Whether ``node`` is a call of one of the observers ``prepare_pt2e`` inserts."""
    return (
        isinstance(node, torch.fx.Node)
        and node.op == "call_module"
        and str(node.target).startswith("activation_post_process")
    )


def _input_observer(node: torch.fx.Node) -> str | None:
    """The name of the observer an operator reads its first input through, or None."""
    value = node.args[0] if node.args else None
    return str(value.target) if isinstance(value, torch.fx.Node) and _is_observer(value) else None


def _observers(graph: torch.fx.GraphModule) -> list[tuple[torch.fx.Node, str, nn.Module]]:
    """``(observed value, observer module name, observer)`` for every observer of ``graph``."""
    return [
        (node.args[0], str(node.target), graph.get_submodule(str(node.target)))
        for node in graph.graph.nodes
        if _is_observer(node)
    ]


def _kind(observer: nn.Module) -> tuple[object, ...]:
    fields = ("dtype", "qscheme", "quant_min", "quant_max", "ch_axis", "eps")
    return (type(observer), *(str(getattr(observer, field, None)) for field in fields))


def _transplant(source: torch.fx.GraphModule, target: torch.fx.GraphModule) -> bool:
    """Give each of ``target``'s observers the state of ``source``'s observer of the same value and kind.

    Changes nothing and returns False when an observer of ``target`` has no such counterpart.
    """
    donors = {(value.name, _kind(observer)): observer for value, _, observer in _observers(source)}
    wanted = [(name, donors.get((value.name, _kind(observer)))) for value, name, observer in _observers(target)]
    if any(donor is None for _, donor in wanted):
        return False
    for name, donor in wanted:
        setattr(target, name, copy.deepcopy(donor))
    return True


def _sites(
    graph: torch.fx.GraphModule, rename: Callable[[str], str | None]
) -> dict[torch.fx.Node, tuple[str, object, int]]:
    """A name for each operator of ``graph`` traced inside a module ``rename`` maps: the renamed innermost module
    path, the operator, and how many operators of that path and kind come before it."""
    seen: Counter[tuple[str, object]] = Counter()
    sites = {}
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        path = rename(list(stack.values())[-1][0])
        if path is not None:
            sites[node] = (path, node.target, seen[(path, node.target)])
            seen[(path, node.target)] += 1
    return sites


def _producer(value: torch.fx.Node) -> tuple[torch.fx.Node, int]:
    """The value an observer watches, past any observer chained before it, and how many came before."""
    depth = 0
    while _is_observer(value):
        value, depth = value.args[0], depth + 1  # type: ignore[assignment]
    return value, depth


@dataclasses.dataclass(frozen=True)
class Adoption:
    """What ``adopt`` did: the observers (module names in the target) that took a donor observer's state; the
    values inside mapped modules whose observer found no single counterpart, and the values from elsewhere that
    mapped modules read but whose observer could not be the donor's (read elsewhere too, or inside a list such
    as a token stitch's ``cat``): their observers keep their own state."""

    adopted: frozenset[str]
    unmatched: tuple[str, ...]
    kept: tuple[str, ...]


def _entering(
    node: torch.fx.Node,
    kind: tuple[object, ...],
    source: torch.fx.GraphModule,
    ours: Mapping[torch.fx.Node, tuple[str, object, int]],
    counterparts: Mapping[tuple[str, object, int], torch.fx.Node],
) -> nn.Module | None:
    """The observer of ``source`` (of ``kind``) whose value takes the place of what an observer node of the target
    (``node``) feeds, found through its readers: each must be an operator inside a mapped module, reading it only
    as positional arguments, whose counterpart in ``source`` reads an observer at each of those positions; None
    unless all of them read one observer (a value read elsewhere too, or inside a list such as ``cat``'s, is not
    the donor's to give)."""
    found: dict[int, nn.Module] = {}
    for user in node.users:
        site = ours.get(user)
        counterpart = None if site is None else counterparts.get(site)
        positions = [k for k, arg in enumerate(user.args) if arg is node]
        if counterpart is None or not positions or node in user.kwargs.values():
            return None
        for k in positions:
            theirs = counterpart.args[k] if k < len(counterpart.args) else None
            if not _is_observer(theirs):
                return None
            observer = source.get_submodule(str(theirs.target))  # type: ignore[union-attr]
            found[id(observer)] = observer
    if len(found) != 1:
        return None
    (observer,) = found.values()
    return observer if _kind(observer) == kind else None


def adopt(source: torch.fx.GraphModule, target: torch.fx.GraphModule, rename: Callable[[str], str | None]) -> Adoption:
    """Give each of ``target``'s observers of values inside modules that ``rename`` maps to ones of ``source``,
    or entering them, the state of ``source``'s observer of the same values and kind.

    A value inside is the same when its operator has the same kind and order within the corresponding module. A
    value entering from elsewhere (a stitching layer's output, read only inside mapped modules) is the one the
    counterparts of its readers read, so it is quantized as the donor quantizes the input of those modules. An
    observer that several values share (one set of parameters for an operator's input and output) is adopted
    whole, only when all its values map to one observer of ``source``; otherwise it keeps its own state.
    """
    counterparts = {site: value for value, site in _sites(source, lambda path: path).items()}
    donors = {(_producer(value), _kind(observer)): observer for value, _, observer in _observers(source)}
    ours = _sites(target, rename)
    groups: dict[int, list[tuple[torch.fx.Node, tuple[torch.fx.Node, int], str, nn.Module]]] = {}
    for node in target.graph.nodes:
        if _is_observer(node):
            observer = target.get_submodule(str(node.target))
            groups.setdefault(id(observer), []).append((node, _producer(node.args[0]), str(node.target), observer))
    adopted: set[str] = set()
    unmatched: list[str] = []
    kept: list[str] = []
    for members in groups.values():
        found = {
            donors.get(((counterparts.get(ours[value]), depth), _kind(observer)))  # type: ignore[arg-type]
            if value in ours
            else _entering(node, _kind(observer), source, ours, counterparts)
            for node, (value, depth), _, observer in members
        }
        if None in found or len(found) > 1:
            unmatched += [value.name for _, (value, _), _, _ in members if value in ours]
            kept += [
                value.name
                for node, (value, _), _, _ in members
                if value not in ours and any(user in ours for user in node.users)
            ]
            continue
        donor = copy.deepcopy(found.pop())
        for _, _, name, _ in members:
            setattr(target, name, donor)
            adopted.add(name)
    return Adoption(frozenset(adopted), tuple(unmatched), tuple(kept))


def quantize_pt2e(
    exported: torch.export.ExportedProgram,
    quantizer: Quantizer,
    calibration: torch.Tensor,
    float_modules: Sequence[str],
    fold_quantize: bool,
    observed: Observed | None = None,
    corrected: Mapping[str, torch.Tensor] | None = None,
) -> torch.fx.GraphModule:
    """Insert observers per ``quantizer`` into a copy of ``exported``, calibrate on ``calibration``, convert,
    and correct the biases (``bias_correction``) on the first ``BIAS_IMAGES`` calibration images.

    ``exported`` (from ``export_batched``) is not modified, so one export serves many quantization choices.
    With ``observed`` (``observe`` of the same export, quantizer configuration and calibration), observer
    states and the float means are copied from it instead of measured again, and layers of modules shared with
    its donor take the donor's biases; any observer it lacks means calibrating after all. ``corrected``: the
    biases bias correction gave this very graph before (``layer_biases`` of it, from the same export, observers
    and float modules), set as they are instead of measured again.
    """
    prepared = prepare_pt2e(exported.module(), _Annotations(quantizer, float_modules))
    transplanted = observed is not None and _transplant(observed.graph, prepared)
    if observed is not None and not transplanted:
        _log.warning("an observer has no calibrated counterpart: calibrating again (a donor's states are lost)")
    images = calibration[:BIAS_IMAGES]
    if not transplanted:
        _calibrate(prepared, calibration)
        observed = Observed(prepared, layer_means(copy.deepcopy(prepared), images), {})
    assert observed is not None
    converted: torch.fx.GraphModule = convert_pt2e(prepared, fold_quantize=fold_quantize)
    nodes = {node.name: node for node in converted.graph.nodes}
    if transplanted and corrected is not None and set_biases(converted, corrected):
        return converted
    fixed = {name: bias for name, bias in observed.biases.items() if not _inside(nodes[name], float_modules)}
    correct_biases(converted, observed.means, images, fixed)
    return converted

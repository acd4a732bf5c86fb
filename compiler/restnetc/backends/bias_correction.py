"""Empirical bias correction of a PT2E-converted int8 graph: each layer's mean output per channel, over a few
calibration images, made the float model's again.

Quantization shifts the mean of each convolution's and linear layer's output (rounded weights, and the error of
every quantized layer upstream); the bias absorbs the shift. Layers are corrected in network order, each after
the ones before it, so each also absorbs what reaches it from upstream. The bias of a converted graph is a float
constant read by its layer (the runtimes quantize it to int32 at lowering), so only its values change; the graph
does not. Measured on the demo's parents (``benchmarks/RESULTS.md`` section 10).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from operator import attrgetter

import torch
from torch.fx import GraphModule, Interpreter, Node

_log = logging.getLogger(__name__)

LAYERS = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
"""The operators whose bias is corrected."""

BIAS_IMAGES = 256
"""Calibration images the means are measured on (the first ones)."""

Means = dict[str, torch.Tensor]
"""Per-channel mean output of each layer, by node name (float64)."""


def _layer(node: Node) -> bool:
    return node.op == "call_function" and node.target in LAYERS


def _channel_axis(node: Node, output: torch.Tensor) -> int:
    return 1 if node.target == torch.ops.aten.conv2d.default else output.dim() - 1


def _channel_means(node: Node, output: torch.Tensor) -> torch.Tensor:
    axis = _channel_axis(node, output)
    return output.double().mean(dim=[d for d in range(output.dim()) if d != axis])


def bias_constant(node: Node) -> Node | None:
    """The constant (``get_attr`` node) ``node`` reads as its bias if it is a layer with one, else None."""
    if not _layer(node):
        return None
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    return bias if isinstance(bias, Node) and bias.op == "get_attr" else None


def _bias(graph: GraphModule, node: Node) -> torch.Tensor | None:
    """The float bias ``node`` (a layer) reads as a constant of ``graph`` that no other node reads, or None (no
    bias, not a constant, or shared: correcting it for one layer would move the others)."""
    bias = bias_constant(node)
    if bias is None or len(bias.users) > 1:
        return None
    value = attrgetter(str(bias.target))(graph)
    return value if isinstance(value, torch.Tensor) and value.is_floating_point() else None


def _replace(graph: torch.nn.Module, target: str, value: torch.Tensor) -> None:
    """Make ``graph``'s constant ``target`` a new tensor ``value``: the old one may be shared with the exported
    program the graph was made from (and every other graph made from it), so it is never written to."""
    path, _, name = target.rpartition(".")
    owner = graph.get_submodule(path)
    if isinstance(getattr(owner, name), torch.nn.Parameter):
        value = torch.nn.Parameter(value, requires_grad=False)
    setattr(owner, name, value)


class _Means(Interpreter):
    def __init__(self, graph: GraphModule) -> None:
        super().__init__(graph)
        self.means: Means = {}

    def run_node(self, n: Node) -> object:
        output = super().run_node(n)
        if _layer(n) and isinstance(output, torch.Tensor):
            self.means[n.name] = _channel_means(n, output)
        return output


@torch.no_grad()
def layer_means(graph: GraphModule, images: torch.Tensor) -> Means:
    """Each layer's per-channel mean output over ``images`` as ``graph`` computes it (run it on a copy of a
    prepared graph to measure the float model: its observers record what they see)."""
    means = _Means(graph)
    means.run(images)
    return means.means


class _Correcting(Interpreter):
    def __init__(self, graph: GraphModule, reference: Mapping[str, torch.Tensor], fixed: Mapping[str, torch.Tensor]):
        super().__init__(graph)
        self.reference = reference
        self.fixed = fixed
        self.corrected = 0
        self.unreferenced: list[str] = []

    def run_node(self, n: Node) -> object:
        output = super().run_node(n)
        bias = _bias(self.module, n) if _layer(n) else None  # type: ignore[arg-type]
        if bias is None or not isinstance(output, torch.Tensor):
            return output
        if n.name in self.fixed:
            corrected = self.fixed[n.name].to(bias.dtype)
        elif n.name in self.reference:
            corrected = bias + (self.reference[n.name] - _channel_means(n, output)).to(bias.dtype)
        else:
            self.unreferenced.append(n.name)
            return output
        shift = corrected - bias
        _replace(self.module, str(n.args[2].target), corrected)  # type: ignore[union-attr]
        self.corrected += 1
        shape = [1] * output.dim()
        shape[_channel_axis(n, output)] = -1
        return output + shift.view(shape)


@torch.no_grad()
def correct_biases(
    converted: GraphModule,
    reference: Mapping[str, torch.Tensor],
    images: torch.Tensor,
    fixed: Mapping[str, torch.Tensor] | None = None,
) -> int:
    """Correct, in place and in network order, the bias of each layer of ``converted`` named in ``reference``
    (``layer_means`` of the float model, same images) so that its mean output per channel over ``images`` is
    the reference's; a layer named in ``fixed`` takes that bias instead (a donor's corrected bias, so that
    shared modules keep shared bytes). Layers without a float constant bias of their own are left alone; one
    that has such a bias but neither a reference nor a fixed bias is warned of. Returns how many biases changed."""
    correcting = _Correcting(converted, reference, fixed or {})
    correcting.run(images)
    if correcting.unreferenced:
        _log.warning(
            "bias correction left %d layer biases without a float reference: %s",
            len(correcting.unreferenced),
            correcting.unreferenced,
        )
    return correcting.corrected


def layer_biases(graph: GraphModule) -> dict[str, torch.Tensor]:
    """The float bias of each layer of ``graph`` that has one of its own (``correct_biases`` can move it), by
    node name (copies)."""
    biases = {}
    for node in graph.graph.nodes:
        if _layer(node) and (bias := _bias(graph, node)) is not None:
            biases[node.name] = bias.detach().clone()
    return biases


def set_biases(graph: GraphModule, biases: Mapping[str, torch.Tensor]) -> bool:
    """Give each layer of ``graph`` the bias ``biases`` names it with (``layer_biases`` of a graph made and
    corrected the same way), in place; False, changing nothing, unless ``biases`` names exactly the layers that
    have a bias of their own."""
    layers = {
        node.name: (node, bias)
        for node in graph.graph.nodes
        if _layer(node) and (bias := _bias(graph, node)) is not None
    }
    if layers.keys() != biases.keys():
        return False
    for name, (node, bias) in layers.items():
        _replace(graph, str(node.args[2].target), biases[name].to(bias.dtype))
    return True

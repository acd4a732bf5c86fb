"""Graph rewrites that let ExecuTorch's XNNPACK delegate take a transformer whole.

Found on the zoo's DeiTs (32 px): their ExecuTorch programs, fp32 and int8, ran in 32 XNNPACK partitions with 105
ops between them on portable kernels, where LiteRT's delegate left out only GELU. Besides fused attention's masking
ops (gone with explicit attention, ``models.registry.decompose``), these ops have no XNNPACK node:
- ``expand_copy`` that expands nothing (the class token at batch 1, matmul operands): removed by XNNPACK's own
  ``RemoveNoopExpandCopyPass`` (``get_transform_passes``), which ExecuTorch applies only when asked;
- ``squeeze_copy`` (attention's ``unbind``) and ``select_copy`` (the class token's pick): static-shape views, so
  ExecuTorch's ``ReplaceSqueezeAndUnsqueezeWithViewPass`` and ``SelectAsSlice`` make them ``view_copy`` and
  ``slice_copy``, which XNNPACK takes;
- ``native_layer_norm``: XNNPACK 1.5.1 has no layer norm, so ``LayerNormAsLinear`` spells it in ops it has.
The suite's tiny Swin still ran in 8 partitions with those (zoo Swin-Ti in 77 without any), for four more:
- ``roll`` (shifted windows), which ``to_edge`` decomposes into a gather: ``rolls_as_slices`` makes each a
  concatenation of two slices before that;
- the relative position bias gathered from its table at run time: it reads only parameters, so
  ``ConstantsFolded`` (ExecuTorch's constant propagation, which leaves quantize and dequantize alone) computes it
  once;
- ``alias_copy`` (a block's residual): ``AliasesDropped`` reads its input instead;
- the pooling head's mean over ``(1, 2)`` of an NHWC tensor: ``MeanAsPooling`` permutes those dimensions last.
With these, every DeiT and Swin op is delegated (one partition): the zoo's DeiT programs take 0.32-0.34x their
time before in fp32 and 0.25-0.29x in int8, Swin-Ti's 0.71x and 0.72x (``benchmarks/delegation.py``).
They run before partitioning, on float and int8 graphs alike, and compute the same values. No quantizer annotates
layer norm, so an int8 graph's layer norms read float values (dequantized where their input is int8, as in Swin)
and their rewrite stays float (XNNPACK takes a linear's precision from its weight): the simulation still holds.
"""

from __future__ import annotations

import operator

import torch
from executorch.backends.transforms.permute_pass_utils import RemoveOrReplacePassInterface
from executorch.backends.transforms.replace_squeeze_unsqueeze_with_view import ReplaceSqueezeAndUnsqueezeWithViewPass
from executorch.backends.transforms.utils import create_constant_placeholder
from executorch.backends.xnnpack.utils.configs import get_transform_passes
from executorch.exir.dialects._ops import ops as exir_ops
from executorch.exir.dialects.edge._ops import EdgeOpOverload
from executorch.exir.pass_base import ExportedProgramPassBase, ExportedProgramPassResult
from executorch.exir.pass_manager import PassType
from executorch.exir.passes.constant_prop_pass import constant_prop_pass
from torch._subclasses.fake_tensor import FakeTensor
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, TensorArgument
from torch.fx import Node
from torch.fx.node import Argument, map_arg
from torch.utils._pytree import tree_leaves

edge = exir_ops.edge.aten
aten = torch.ops.aten


class SelectAsSlice(RemoveOrReplacePassInterface):  # type: ignore[misc]  # untyped upstream
    """Each ``select_copy`` becomes the ``slice_copy`` of its one index, viewed to the selected shape."""

    @property
    def targets(self) -> list[EdgeOpOverload]:
        return [edge.select_copy.int]

    def maybe_remove_or_replace(self, node: Node) -> bool:
        source, dim, index = node.args
        assert isinstance(source, Node) and isinstance(dim, int) and isinstance(index, int)
        if not all(isinstance(size, int) for size in node.meta["val"].shape):
            return False  # a dynamic shape: the view below would fix it
        index %= source.meta["val"].shape[dim]
        with node.graph.inserting_before(node):
            picked = node.graph.call_function(edge.slice_copy.Tensor, (source, dim, index, index + 1))
            view = node.graph.call_function(edge.view_copy.default, (picked, list(node.meta["val"].shape)))
        view.meta = node.meta
        node.replace_all_uses_with(view)
        return True


class LayerNormAsLinear(ExportedProgramPassBase):  # type: ignore[misc]  # untyped upstream
    """Each layer norm over the last dimension, of which only the normalized output is read, spelled in ops
    XNNPACK delegates without moving data: the means over the last dimension are fully connected layers of one
    output whose weight is ``1/C`` (eps the bias of the second), so no view or transpose is added (``_spell``).

    The other spelling, means as XNNPACK's global average pooling, needs a 4-D input reduced over its last two
    dimensions in NHWC, so each mean costs a view and transposes: the zoo's DeiT-Ti program had 374 XNNPACK nodes
    that way and has 283 this way, and ran 7-12% faster, fp32 and int8 alike (2026-12-06, a scratch run of
    ``benchmarks/delegation.py`` with both spellings side by side)."""

    def call(self, program: ExportedProgram) -> ExportedProgramPassResult:
        graph = program.graph_module.graph
        norms = [node for node in graph.nodes if node.target == edge.native_layer_norm.default and _normalized(node)]
        for node in norms:
            _spell(program, node)
        if norms:
            graph.lint()
            program.graph_module.recompile()
        return ExportedProgramPassResult(program, bool(norms))


def _normalized(node: Node) -> bool:
    """Whether ``node`` normalizes over a last dimension of static size only and only its normalized output is
    read."""
    source, shape = node.args[0], node.args[1]
    return (
        isinstance(shape, list | tuple)
        and len(shape) == 1
        and isinstance(source, Node)
        and isinstance(source.meta["val"].shape[-1], int)
        and all(user.target is operator.getitem and user.args[1] == 0 for user in node.users)
    )


def _constant(program: ExportedProgram, name: str, value: torch.Tensor) -> Node:
    """The program's parameter ``name``, made from ``value`` the first time (a name stands for one value). A
    parameter, not a lifted constant: made as lifted constants, these failed to lower ("not a buffer") in programs
    of several partitions (the suite's Swin and ViT stitches, before the Swin rewrites below)."""
    graph = program.graph_module.graph
    with graph.inserting_before(next(node for node in graph.nodes if node.op == "placeholder")):
        return create_constant_placeholder(program, graph, name, InputKind.PARAMETER, value)  # type: ignore[no-any-return]


def _call(graph: torch.fx.Graph, target: EdgeOpOverload | torch._ops.OpOverload, *args: Argument) -> Node:
    """A call of ``target`` on ``args``, its output's fake value computed from theirs."""
    node = graph.call_function(target, args)
    values = map_arg(args, lambda arg: arg.meta["val"])
    with next(value.fake_mode for value in tree_leaves(values) if isinstance(value, FakeTensor)):
        node.meta["val"] = target(*values)
    return node


_IDENTIFIER = str.maketrans({".": "_", "-": "m", "+": "p"})
"""What makes a float's exact ``float.hex()`` part of a constant's name."""


def _spell(program: ExportedProgram, node: Node) -> None:
    """``node`` (a layer norm over the last dimension ``C``): ``x - mean(x)`` over the root of the mean square
    plus eps, times the weight plus the bias, each mean a linear layer of weight ``1/C`` of shape ``(1, C)``."""
    source, _, weight, bias, eps = node.args
    assert isinstance(source, Node) and isinstance(eps, float)
    width = source.meta["val"].shape[-1]
    mean = _constant(program, f"layer_norm_mean_{width}", torch.full((1, width), 1.0 / width))
    epsilon = _constant(program, "layer_norm_eps_" + eps.hex().translate(_IDENTIFIER), torch.tensor([eps]))
    graph = program.graph_module.graph
    with graph.inserting_before(node):
        centred = _call(graph, edge.sub.Tensor, source, _call(graph, edge.linear.default, source, mean))
        variance = _call(graph, edge.linear.default, _call(graph, edge.mul.Tensor, centred, centred), mean, epsilon)
        out = _call(graph, edge.mul.Tensor, centred, _call(graph, edge.rsqrt.default, variance))
        if weight is not None:
            out = _call(graph, edge.mul.Tensor, out, weight)
        if bias is not None:
            out = _call(graph, edge.add.Tensor, out, bias)
    for user in list(node.users):
        _replace(program, user, out)
    graph.erase_node(node)


def _replace(program: ExportedProgram, node: Node, by: Node) -> None:
    """``node`` erased and read as ``by``, in the graph and in the program's outputs (which name the node)."""
    for spec in program.graph_signature.output_specs:
        if isinstance(spec.arg, TensorArgument) and spec.arg.name == node.name:
            spec.arg.name = by.name
    node.replace_all_uses_with(by)
    node.graph.erase_node(node)


class ConstantsFolded(ExportedProgramPassBase):  # type: ignore[misc]  # untyped upstream
    """ExecuTorch's ``constant_prop_pass``: each value computed only from parameters and constants (Swin's
    relative position bias, gathered from its table) computed once and stored; quantize and dequantize stay. A
    folded value can take more bytes than what it was computed from (Swin's bias: heads x tokens^2 per block,
    against its table's heads x (2 x window - 1)^2)."""

    def call(self, program: ExportedProgram) -> ExportedProgramPassResult:
        return ExportedProgramPassResult(constant_prop_pass(program), True)


class AliasesDropped(RemoveOrReplacePassInterface):  # type: ignore[misc]  # untyped upstream
    """Each ``alias_copy`` of a computed value (the same values) read as that value."""

    @property
    def targets(self) -> list[EdgeOpOverload]:
        return [edge.alias_copy.default]

    def maybe_remove_or_replace(self, node: Node) -> bool:
        (source,) = node.args
        if not isinstance(source, Node) or source.op == "placeholder":
            return False  # an output aliasing an input is not this pass's to make
        node.replace_all_uses_with(source)
        return True


class MeanAsPooling(RemoveOrReplacePassInterface):  # type: ignore[misc]  # untyped upstream
    """Each mean of a static 4-D shape over any pair of dimensions but ``(2, 3)`` (an NHWC pooling head's
    ``(1, 2)``) taken over the last two of a permuted copy, which XNNPACK pools, and viewed to its shape."""

    @property
    def targets(self) -> list[EdgeOpOverload]:
        return [edge.mean.dim]

    def maybe_remove_or_replace(self, node: Node) -> bool:
        source, dims = node.args[0], node.args[1]
        assert isinstance(source, Node)
        shape = source.meta["val"].shape
        if len(shape) != 4 or not isinstance(dims, list | tuple) or node.kwargs.get("dtype") is not None:
            return False
        reduced = sorted({dim % 4 for dim in dims if isinstance(dim, int)})
        if len(dims) != 2 or len(reduced) != 2 or reduced == [2, 3] or not all(isinstance(size, int) for size in shape):
            return False
        order = [dim for dim in range(4) if dim not in reduced] + reduced
        graph = node.graph
        with graph.inserting_before(node):
            pooled = _call(graph, edge.mean.dim, _call(graph, edge.permute_copy.default, source, order), [2, 3], True)
            out = _call(graph, edge.view_copy.default, pooled, list(node.meta["val"].shape))
        node.replace_all_uses_with(out)
        return True


def rolls_as_slices(program: ExportedProgram) -> ExportedProgram:
    """``program`` (ATen, before ``to_edge``) with each ``roll`` of static size written as the concatenation of
    its two slices along each rolled dimension: the same values, in ops XNNPACK takes (``to_edge`` would make it
    a gather, which it does not)."""
    graph = program.graph_module.graph
    for node in [node for node in graph.nodes if node.target == aten.roll.default]:
        source, shifts, dims = node.args[0], node.args[1], node.args[2] if len(node.args) > 2 else []
        assert isinstance(source, Node) and isinstance(shifts, list | tuple) and isinstance(dims, list | tuple)
        if len(dims) != len(shifts) or not all(isinstance(size, int) for size in source.meta["val"].shape):
            continue  # a flattened roll (no dims) or a dynamic shape: left as it is
        rolled = source
        with graph.inserting_before(node):
            for shift, dim in zip(shifts, dims, strict=True):
                size = source.meta["val"].shape[dim]
                cut = size - int(shift) % size
                if cut != size:
                    tail = _call(graph, aten.slice.Tensor, rolled, dim, cut, size)
                    head = _call(graph, aten.slice.Tensor, rolled, dim, 0, cut)
                    rolled = _call(graph, aten.cat.default, [tail, head], dim)
        _replace(program, node, rolled)
    program.graph_module.recompile()
    return program


def transform_passes() -> list[PassType]:
    """The edge passes every ExecuTorch program is lowered with (``to_edge_transform_and_lower``'s
    ``transform_passes``, after ``rolls_as_slices``), XNNPACK's own first."""
    passes: list[PassType] = get_transform_passes(
        [
            ConstantsFolded(),
            ReplaceSqueezeAndUnsqueezeWithViewPass(),
            SelectAsSlice(),
            LayerNormAsLinear(),
            AliasesDropped(),
            MeanAsPooling(),
        ]
    )
    return passes

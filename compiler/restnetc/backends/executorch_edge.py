"""Edge-graph rewrites that let ExecuTorch's XNNPACK delegate take a transformer whole.

Found on the zoo's DeiTs (32 px): their ExecuTorch programs, fp32 and int8, ran in 32 XNNPACK partitions with 105
ops between them on portable kernels, where LiteRT's delegate left out only GELU. Besides fused attention's masking
ops (gone with explicit attention, ``models.registry.decompose``), three kinds of op XNNPACK has no node for:
- ``expand_copy`` that expands nothing (the class token at batch 1, matmul operands): removed by XNNPACK's own
  ``RemoveNoopExpandCopyPass`` (``get_transform_passes``), which ExecuTorch applies only when asked;
- ``squeeze_copy`` (attention's ``unbind``) and ``select_copy`` (the class token's pick): static-shape views, so
  ExecuTorch's ``ReplaceSqueezeAndUnsqueezeWithViewPass`` and ``SelectAsSlice`` make them ``view_copy`` and
  ``slice_copy``, which XNNPACK takes;
- ``native_layer_norm``: XNNPACK 1.5.1 has no layer norm, so ``LayerNormAsMeans`` spells it in ops it has.
With these, every DeiT op is delegated (one partition) and the programs run 2.6-2.8x (fp32) and 3.0-3.5x (int8)
faster on this machine (``benchmarks/transformer_delegation.py``). They run before partitioning, on float and int8
graphs alike; an int8 graph's LayerNorms read float values already (``pt2e.float_residual_streams``), so its
simulation is unchanged.
"""

from __future__ import annotations

import math
import operator

import torch
from executorch.backends.transforms.permute_pass_utils import RemoveOrReplacePassInterface
from executorch.backends.transforms.replace_squeeze_unsqueeze_with_view import ReplaceSqueezeAndUnsqueezeWithViewPass
from executorch.backends.xnnpack.utils.configs import get_transform_passes
from executorch.exir.dialects._ops import ops as exir_ops
from executorch.exir.dialects.edge._ops import EdgeOpOverload
from executorch.exir.pass_base import ExportPass, PassResult
from executorch.exir.pass_manager import PassType
from torch.fx import GraphModule, Node

edge = exir_ops.edge.aten


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


class LayerNormAsMeans(ExportPass):  # type: ignore[misc]  # untyped upstream
    """Each layer norm over the last dimension, of a static shape, spelled in ops XNNPACK delegates (``_replace``)."""

    def call(self, graph_module: GraphModule) -> PassResult:
        graph = graph_module.graph
        for node in list(graph.nodes):
            if node.op == "call_function" and node.target == edge.native_layer_norm.default and _normalized(node):
                _replace(graph, node)
        graph.lint()
        graph_module.recompile()
        return super().call(graph_module)

    def call_operator(self, op, args, kwargs, meta):  # type: ignore[no-untyped-def]
        """The edge dialect takes no Python scalar where a tensor goes: eps (and any other float added by
        ``add.Tensor``, the same value) becomes a 0-d float32 constant."""
        if op == edge.add.Tensor and isinstance(args[1], float):
            with torch.utils._python_dispatch._disable_current_modes():
                args = (args[0], torch.tensor(args[1], dtype=torch.float32))
        return super().call_operator(op, args, kwargs, meta)


def _normalized(node: Node) -> bool:
    """Whether ``node`` normalizes a static shape over the last dimension only and only its normalized output is
    read (``_replace`` views the input to a fixed shape)."""
    source, shape = node.args[0], node.args[1]
    return (
        isinstance(shape, list | tuple)
        and len(shape) == 1
        and isinstance(source, Node)
        and all(isinstance(size, int) for size in source.meta["val"].shape)
        and all(user.target is operator.getitem and user.args[1] == 0 for user in node.users)
    )


def _replace(graph: torch.fx.Graph, node: Node) -> None:
    """``node`` (a layer norm over the last dimension of ``(..., C)``) as XNNPACK ops: viewed ``(1, rows, C, 1)``,
    the mean over the last two dimensions (XNNPACK's global average pooling takes only that, of a 4-D input),
    centred, over the root of the mean square plus eps, viewed back, times the weight plus the bias."""
    source, _, weight, bias, eps = node.args
    assert isinstance(source, Node)
    shape = list(source.meta["val"].shape)
    call = graph.call_function
    with graph.inserting_before(node):
        columns = call(edge.view_copy.default, (source, [1, math.prod(shape[:-1]), shape[-1], 1]))
        centred = call(edge.sub.Tensor, (columns, call(edge.mean.dim, (columns, [-2, -1], True))))
        variance = call(edge.mean.dim, (call(edge.mul.Tensor, (centred, centred)), [-2, -1], True))
        scale = call(edge.rsqrt.default, (call(edge.add.Tensor, (variance, eps)),))
        out = call(edge.view_copy.default, (call(edge.mul.Tensor, (centred, scale)), shape))
        if weight is not None:
            out = call(edge.mul.Tensor, (out, weight))
        if bias is not None:
            out = call(edge.add.Tensor, (out, bias))
    for user in list(node.users):
        user.replace_all_uses_with(out)
        graph.erase_node(user)
    graph.erase_node(node)


def transform_passes() -> list[PassType]:
    """The edge passes every ExecuTorch program is lowered with (``to_edge_transform_and_lower``'s
    ``transform_passes``), XNNPACK's own first."""
    passes: list[PassType] = get_transform_passes(
        [ReplaceSqueezeAndUnsqueezeWithViewPass(), SelectAsSlice(), LayerNormAsMeans()]
    )
    return passes

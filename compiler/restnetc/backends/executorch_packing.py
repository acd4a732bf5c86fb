"""Whether XNNPACK may pack each weight of an ExecuTorch program once for all its methods.

ExecuTorch's XNNPACK weight cache names a packing by the named-data keys of the operator's kernel and bias (the
bias only when it is named too) and checks nothing else but a seed from the shapes; packing folds in more than
those bytes: for int8 the quantization of the operator's input, output and kernel. Two methods that read one
kernel and bias under different quantizations would therefore share a packing made for one of them and compute
wrong results. A program may share its packings only when every operator reading a named kernel (and bias) reads
it under one quantization and one set of parameters; this module checks that on the ``.pte`` file, delegate by
delegate (``executorch_delegates``).

It goes wrong inside one method too. A ViT stitch maps its class token and its patch tokens with one linear
layer's weight and bias; when the two slices are quantized apart (``pt2e.float_residual_streams``), the program
stored that bias once, in float, so both operators had the same kernel and bias keys, and ``executorch.runtime``
computed wrong results (DeiT-S -> DeiT-Ti stitch-00-00, 500 validation images: 90.8% of argmaxes agreeing with
the simulation, max logit difference 3.2; with a bias per operator 98.6% and 0.31), as it would running one
operator with the other's packing. ``own_biases`` gives each layer its own bias constant before lowering, which
the program then stores per operator, quantized with that operator's scales.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import fields
from operator import attrgetter

import torch
from executorch.backends.xnnpack.serialization import xnnpack_graph_schema as xnn

from restnetc.backends.executorch_delegates import XnnpackDelegate, delegates, read_program

_OPERANDS: dict[type, tuple[str, str, str | None]] = {  # node: fields naming its (input, kernel, bias)
    xnn.XNNConv2d: ("input1_id", "filter_id", "bias_id"),
    xnn.XNNDepthwiseConv2d: ("input1_id", "filter_id", "bias_id"),
    xnn.XNNConvTranspose2d: ("input1_id", "filter_id", "bias_id"),
    xnn.XNNFullyConnected: ("input1_id", "filter_id", "bias_id"),
    xnn.XNNBatchMatrixMultiply: ("input1_id", "input2_id", None),
}
"""The nodes XNNPACK packs (and caches) constant weights for."""

_NO_VALUE = 0xFFFFFFFF
"""A node's id field meaning "none" (a convolution without bias)."""


def _constant(graph: xnn.XNNGraph, buffer: int) -> xnn.ConstantDataOffset | None:
    """Where constant ``buffer`` is (None for buffer 0 and any index past the table: no constant)."""
    return graph.constant_data[buffer] if 0 < buffer < len(graph.constant_data) else None


def _named(graph: xnn.XNNGraph, buffer: int) -> str | None:
    """The named-data key of constant ``buffer`` (None when the constant is stored inline or absent)."""
    entry = _constant(graph, buffer)
    return str(entry.named_key) if entry is not None and entry.named_key else None


def _identity(delegate: XnnpackDelegate, buffer: int) -> str | None:
    """What constant ``buffer`` holds: its key, or a digest of its bytes when inline; None when there is none."""
    entry = _constant(delegate.graph, buffer)
    if entry is None or entry.named_key:
        return _named(delegate.graph, buffer)
    return hashlib.sha256(delegate.constants[entry.offset : entry.offset + entry.size]).hexdigest()


def _tensor(value: xnn.XValueUnion) -> xnn.XNNTensorValue:
    return value.tensor_value if isinstance(value, xnn.XNNQuantizedTensorValue) else value


def _reading(delegate: XnnpackDelegate, values: dict[int, xnn.XValueUnion], value_id: int) -> tuple[object, ...]:
    """A value as a node reads it: data type, shape, constant contents and quantization, comparable."""
    if value_id == _NO_VALUE:
        return ()
    value = values[value_id]
    tensor = _tensor(value)
    reading: tuple[object, ...] = (
        type(value).__name__,
        int(tensor.datatype),
        tuple(tensor.dims),
        _identity(delegate, tensor.constant_buffer_idx),
    )
    if isinstance(value, xnn.XNNQuantizedTensorValue):
        quant = value.quant_params
        params = {f.name: getattr(quant, f.name) for f in fields(quant)}
        if "scale_buffer_idx" in params:
            params["scale_buffer_idx"] = _identity(delegate, int(params["scale_buffer_idx"]))
        reading += (type(quant).__name__, tuple(sorted((k, repr(v)) for k, v in params.items())))
    return reading


def packing_conflicts(data: bytes) -> tuple[str, ...]:
    """Each place where a node of the ``.pte`` program ``data`` reads a named kernel (and bias) that another node
    also reads under another quantization or other parameters; empty when none does."""
    first: dict[tuple[str, str | None], tuple[tuple[object, ...], str]] = {}
    conflicts: list[str] = []
    for delegate in delegates(read_program(data)):
        graph = delegate.graph
        values = {_tensor(v.xvalue_union).id_out: v.xvalue_union for v in graph.xvalues}
        for k, xnode in enumerate(graph.xnodes):
            node = xnode.xnode_union
            if type(node) not in _OPERANDS:
                continue
            data_in, kernel_in, bias_in = _OPERANDS[type(node)]
            kernel = _named(graph, _tensor(values[getattr(node, kernel_in)]).constant_buffer_idx)
            if kernel is None:
                continue  # weights not named are packed for this method alone, never cached
            bias_id = getattr(node, bias_in) if bias_in is not None else _NO_VALUE
            bias = None if bias_id == _NO_VALUE else _named(graph, _tensor(values[bias_id]).constant_buffer_idx)
            params = tuple((f.name, repr(getattr(node, f.name))) for f in fields(node) if not f.name.endswith("_id"))
            reading = (
                type(node).__name__,
                params,
                repr(xnode.output_min_max),
                *(_reading(delegate, values, v) for v in (getattr(node, data_in), bias_id, node.output_id)),
                _reading(delegate, values, getattr(node, kernel_in)),
            )
            where = f"method {delegate.method!r} delegate {delegate.index} node {k} ({type(node).__name__})"
            seen = first.setdefault((kernel, bias), (reading, where))
            if seen[0] != reading:
                conflicts.append(
                    f"{where} reads kernel {kernel[:12]} under another quantization or other parameters than {seen[1]}"
                )
    return tuple(conflicts)


_LAYERS = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
"""The layers whose bias XNNPACK packs with their kernel."""


def own_biases(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``graph`` with each layer that reads the bias constant of an earlier layer given a copy of its own: the same
    values, so the same result. ``graph`` itself is left as it was; the new module shares its other constants."""
    copied = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))
    made = 0
    for node in list(copied.graph.nodes):
        if node.op != "get_attr":
            continue
        readers = [user for user in node.users if user.target in _LAYERS and user.args[2:3] == (node,)]
        for reader in readers[1:]:
            name = f"_own_bias_{made}"
            made += 1
            copied.register_buffer(name, attrgetter(str(node.target))(copied).detach().clone())
            with copied.graph.inserting_before(reader):
                reader.replace_input_with(node, copied.graph.get_attr(name))
    copied.recompile()
    return copied

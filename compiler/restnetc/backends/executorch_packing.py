"""Whether XNNPACK may pack each weight of an ExecuTorch program once for all its methods.

ExecuTorch's XNNPACK weight cache names a packing by the named-data keys of the operator's kernel and bias (the
bias only when it is named too) and checks nothing else but a seed from the shapes; packing folds in more than
those bytes: for int8 the quantization of the operator's input, output and kernel. Two methods that read one
kernel and bias under different quantizations would therefore share a packing made for one of them and compute
wrong results. A program may share its packings only when every operator reading a named kernel (and bias) reads
it under one quantization and one set of parameters; this module checks that on the ``.pte`` file, delegate by
delegate (``executorch_delegates``).
"""

from __future__ import annotations

import hashlib
from dataclasses import fields

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

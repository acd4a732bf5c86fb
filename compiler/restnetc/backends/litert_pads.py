"""Each PADV2 whose constant cannot be seen written as a PAD, which LiteRT's XNNPACK delegate takes.

litert-torch lowers a padded max pool (ResNet's stem: 3x3, stride 2, padding 1) as a PADV2 with -infinity (in
int8, the lowest value) and an unpadded MAX_POOL_2D. The XNNPACK delegate of ai-edge-litert 2.3.0 takes PAD but
not PADV2, so the pad ran on TFLite's own kernel between two partitions. PAD pads with zero (in int8, the zero
point), which gives the same values when

- in int8, the constant is the input's zero point (a ReLU's output is observed from 0, so its zero point is the
  lowest value): the two ops are then the same op;
- in float32, only max pools read the pad, each window holds at least one value of the input (every pad is
  smaller than the window), and the input is never negative (written by an op with a fused RELU or RELU6): a max
  over values at least 0 is the same with zeros beside them as with -infinity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.tools import flatbuffer_utils

from restnetc.backends.litert_interface import opcode

_NON_NEGATIVE = frozenset({schema_fb.ActivationFunctionType.RELU, schema_fb.ActivationFunctionType.RELU6})
"""Fused activations whose output is never negative."""

_TYPES = {
    schema_fb.TensorType.INT8: np.int8,
    schema_fb.TensorType.INT32: np.int32,
    schema_fb.TensorType.FLOAT32: np.float32,
}


def _constant(model: Any, tensor: Any) -> np.ndarray | None:
    """The values of constant ``tensor``, in its own type; None unless it is a constant of ``_TYPES``."""
    data = model.buffers[tensor.buffer].data
    if tensor.type not in _TYPES or data is None or len(data) == 0:
        return None
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), _TYPES[tensor.type])


def _zero_point(tensor: Any) -> tuple[float, int] | None:
    """``tensor``'s one scale and zero point; None unless it has exactly one of each."""
    q = tensor.quantization
    if q is None or q.scale is None or q.zeroPoint is None or len(q.scale) != 1 or len(q.zeroPoint) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


def _hidden_by_max_pools(model: Any, subgraph: Any, pad: Any, codes: list[int]) -> bool:
    """Whether ``pad`` (a float PADV2) is read only by max pools whose every window reaches its input, and its
    input is written by an op with a fused RELU or RELU6."""
    source, paddings, sink = pad.inputs[0], pad.inputs[1], pad.outputs[0]
    amounts = _constant(model, subgraph.tensors[paddings])
    writers = [op for op in subgraph.operators if source in op.outputs]
    readers = [op for op in subgraph.operators if sink in op.inputs]
    if amounts is None or len(writers) != 1 or not readers or sink in subgraph.outputs:
        return False
    options = writers[0].builtinOptions
    if getattr(options, "fusedActivationFunction", None) not in _NON_NEGATIVE:
        return False
    for reader in readers:
        if codes[reader.opcodeIndex] != schema_fb.BuiltinOperator.MAX_POOL_2D:
            return False
        window = (reader.builtinOptions.filterHeight, reader.builtinOptions.filterWidth)
        if max(amounts) >= min(window):
            return False
    return True


def _pads_like_pad(model: Any, subgraph: Any, pad: Any, codes: list[int]) -> bool:
    """Whether PADV2 ``pad`` computes what a PAD of the same paddings would (module docstring)."""
    source, sink = (subgraph.tensors[t] for t in (pad.inputs[0], pad.outputs[0]))
    if source.type == schema_fb.TensorType.FLOAT32:
        return _hidden_by_max_pools(model, subgraph, pad, codes)
    constant = _constant(model, subgraph.tensors[pad.inputs[2]])
    quantization = _zero_point(source)
    return (
        source.type == schema_fb.TensorType.INT8
        and quantization is not None
        and quantization == _zero_point(sink)
        and constant is not None
        and constant.size == 1
        and int(constant[0]) == quantization[1]
    )


def padded_with_zeros(model: Any) -> None:
    """Edit ``model`` (a ``schema_py_generated.ModelT`` of its own, ``litert_compact.parse``) in place: each PADV2
    that computes what a PAD would (module docstring) becomes that PAD."""
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]
    pads = [
        op
        for subgraph in model.subgraphs
        for op in subgraph.operators
        if codes[op.opcodeIndex] == schema_fb.BuiltinOperator.PADV2 and _pads_like_pad(model, subgraph, op, codes)
    ]
    for op in pads:
        op.opcodeIndex = opcode(model, schema_fb.BuiltinOperator.PAD)
        op.inputs = op.inputs[:2]
        op.builtinOptionsType = schema_fb.BuiltinOptions.PadOptions
        op.builtinOptions = schema_fb.PadOptionsT()

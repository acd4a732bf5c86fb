"""Each PADV2 that computes what a PAD would becomes a PAD, which LiteRT's XNNPACK delegate takes.

litert-torch lowers a padded max pool (ResNet's stem: 3x3, stride 2, padding 1) as a PADV2 with -infinity (in
int8, the lowest value) and an unpadded MAX_POOL_2D. The XNNPACK delegate of ai-edge-litert 2.3.0 takes PAD but
not PADV2, so the pad ran on TFLite's own kernel between two partitions. PAD pads with zero (in int8, the zero
point), which gives the same values when

- in int8, the constant is the zero point of the input and the output (a ReLU's output is observed from 0, so its
  zero point is the lowest value): the two ops are then the same op;
- in float32, the constant is at most 0, only unpadded (VALID) max pools read the pad, only height and width are
  padded and each by less than the pools' window along it (so every window holds a value of the input), and the
  input is never negative (written by an op with a fused RELU or RELU6): a max over values at least 0 is the
  same with zeros beside them as with the constant.

The PADV2's constant tensor stays in the file, unread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.tools import flatbuffer_utils

from restnetc.backends.litert_interface import opcode, quantization

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


def _hidden_by_max_pools(model: Any, subgraph: Any, pad: Any, constant: np.ndarray | None, codes: list[int]) -> bool:
    """Whether ``pad`` (a float32 PADV2 of constant ``constant``) pads with at most 0, only along height and width
    and by less than the window of every max pool reading it (unpadded ones only, nothing else reading it), and its
    input is written by an op with a fused RELU or RELU6."""
    source, sink = pad.inputs[0], pad.outputs[0]
    amounts = _constant(model, subgraph.tensors[pad.inputs[1]])
    writers = [op for op in subgraph.operators if source in op.outputs]
    readers = [op for op in subgraph.operators if sink in op.inputs]
    if constant is None or constant.size != 1 or constant[0] > 0 or amounts is None or amounts.size != 8:
        return False
    (batch, height, width, channels) = amounts.reshape(4, 2).max(axis=1)
    if batch or channels or len(writers) != 1 or not readers or sink in subgraph.outputs:
        return False
    if getattr(writers[0].builtinOptions, "fusedActivationFunction", None) not in _NON_NEGATIVE:
        return False
    for reader in readers:
        options = reader.builtinOptions
        if codes[reader.opcodeIndex] != schema_fb.BuiltinOperator.MAX_POOL_2D:
            return False
        if options.padding != schema_fb.Padding.VALID:
            return False
        if height >= options.filterHeight or width >= options.filterWidth:
            return False
    return True


def _pads_like_pad(model: Any, subgraph: Any, pad: Any, codes: list[int]) -> bool:
    """Whether PADV2 ``pad`` computes what a PAD of the same paddings would (module docstring)."""
    source, sink = (subgraph.tensors[t] for t in (pad.inputs[0], pad.outputs[0]))
    constant = _constant(model, subgraph.tensors[pad.inputs[2]])
    if source.type == schema_fb.TensorType.FLOAT32:
        return _hidden_by_max_pools(model, subgraph, pad, constant, codes)
    scales, zero_points, _ = quantization(source) or ((), (), 0)
    return (
        source.type == schema_fb.TensorType.INT8
        and len(scales) == len(zero_points) == 1
        and quantization(source) == quantization(sink)
        and constant is not None
        and constant.size == 1
        and int(constant[0]) == zero_points[0]
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
        version = model.operatorCodes[op.opcodeIndex].version  # TFLite versions PAD and PADV2 alike
        op.opcodeIndex = opcode(model, schema_fb.BuiltinOperator.PAD)
        code = model.operatorCodes[op.opcodeIndex]
        code.version = max(code.version, version)
        op.inputs = op.inputs[:2]
        op.builtinOptionsType = schema_fb.BuiltinOptions.PadOptions
        op.builtinOptions = schema_fb.PadOptionsT()

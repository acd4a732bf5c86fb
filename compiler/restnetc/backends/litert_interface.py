"""A float32 interface for an int8 ``.tflite``: one QUANTIZE at each input, one DEQUANTIZE at each output.

litert-torch folds the PT2E graph's input quantize and output dequantize into the program's interface, so an
int8 program takes and returns int8 tensors, and no quantizer setting keeps them. MediaPipe's tasks and
Android's model binding refuse int8 tensors at either end (they take float32 or uint8). This edit of the
flatbuffer puts the two ops back: each int8 input or output of every subgraph gets a float32 twin that takes
over its name, its place in the subgraph's interface and in its signature, and is converted by a QUANTIZE
(float32 to int8) before the first op or a DEQUANTIZE (int8 to float32) after the last one, with the old
tensor's own scale and zero point. Nothing else changes: the logits are the int8 program's, exactly, and
XNNPACK delegates both ops.

An input may take raw uint8 pixels instead (``pixels``, from ``base.raw_pixels``): its twin is then uint8 under
that quantization, and its QUANTIZE requantizes to the int8 input, as TFLite's own uint8-input image models do
(a float32 input, of a program whose stem stays float, gets a DEQUANTIZE from the pixels instead). XNNPACK does
not take a uint8-to-int8 QUANTIZE, so that one op runs in TFLite's own kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.tools import flatbuffer_utils

from restnetc.backends.litert_compact import parse, serialize
from restnetc.shim_abi import TensorQuantization

_OP_VERSION = 2
"""The version every QUANTIZE and DEQUANTIZE here is given: TFLite's for DEQUANTIZE from int8 (QUANTIZE to int8
and DEQUANTIZE from uint8 are version 1, which every runtime that runs version 2 also runs)."""


def opcode(model: Any, builtin: int) -> int:
    """The index of ``builtin``'s operator code in ``model``, added if absent, at least ``_OP_VERSION``."""
    for index, code in enumerate(model.operatorCodes):
        if flatbuffer_utils.get_builtin_code_from_operator_code(code) == builtin:
            code.version = max(code.version, _OP_VERSION)
            return index
    code = schema_fb.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, schema_fb.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    code.version = _OP_VERSION
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def quantization(tensor: Any) -> tuple[tuple[float, ...], tuple[int, ...], int] | tuple[()]:
    """A tensor's quantization as comparable values: its scales, zero points and quantized dimension (empty when
    it is float)."""
    q = tensor.quantization
    if q is None or q.scale is None:
        return ()
    zero_points = () if q.zeroPoint is None else tuple(int(z) for z in q.zeroPoint)
    return (tuple(float(s) for s in q.scale), zero_points, int(q.quantizedDimension))


def float_tensor_like(subgraph: Any, index: int) -> int:
    """Add an unnamed float32 tensor shaped like tensor ``index``; its index. It lives in buffer 0, the
    flatbuffer's empty buffer: the runtime allocates it."""
    old = subgraph.tensors[index]
    tensor = schema_fb.TensorT()
    tensor.shape, tensor.shapeSignature = old.shape, old.shapeSignature
    tensor.type, tensor.buffer = schema_fb.TensorType.FLOAT32, 0
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _twin(subgraph: Any, index: int, pixels: TensorQuantization | None = None) -> int:
    """Add a float32 tensor (uint8 under ``pixels``) shaped like tensor ``index``, under its name (the old one,
    no longer an end, loses it in ``serialize``); its index."""
    old = subgraph.tensors[index]
    twin = float_tensor_like(subgraph, index)
    tensor = subgraph.tensors[twin]
    tensor.name = old.name
    if pixels is not None:
        tensor.type = schema_fb.TensorType.UINT8
        tensor.quantization = schema_fb.QuantizationParametersT()
        tensor.quantization.scale = np.array([pixels.scale], np.float32)
        tensor.quantization.zeroPoint = np.array([pixels.zero_point], np.int64)
    return twin


def unary_operator(opcode: int, source: int, sink: int) -> Any:
    """An operator of operator code ``opcode`` from tensor ``source`` to tensor ``sink``."""
    op = schema_fb.OperatorT()
    op.opcodeIndex = opcode
    op.inputs, op.outputs = np.array([source], np.int32), np.array([sink], np.int32)
    return op


def float_interface(
    data: bytes, inputs: bool = True, outputs: bool = True, pixels: TensorQuantization | None = None
) -> bytes:
    """The program ``data`` with every int8 input (if ``inputs``) and output (if ``outputs``) of every subgraph
    float32, or its inputs uint8 raw pixels under ``pixels`` (``with_float_interface``); a program with no such
    tensor comes back unchanged."""
    model = parse(data)
    return serialize(model) if with_float_interface(model, inputs, outputs, pixels) else data


def with_float_interface(
    model: Any, inputs: bool = True, outputs: bool = True, pixels: TensorQuantization | None = None
) -> bool:
    """Edit ``model`` (a ``schema_py_generated.ModelT`` of its own, ``litert_compact.parse``) in place: every int8
    input (if ``inputs``) and output (if ``outputs``) of every subgraph gets a float32 twin, or its inputs uint8 raw
    pixels under ``pixels`` (module docstring); whether any tensor did. ValueError if buffer 0 holds data (the
    flatbuffer breaks TFLite's convention, and a twin cannot be given a runtime buffer), or if ``pixels`` is not a
    uint8 quantization."""
    if pixels is not None and pixels.dtype != "uint8":
        raise ValueError(f"pixels: expected a uint8 quantization, got {pixels.dtype}")
    int8, float32 = schema_fb.TensorType.INT8, schema_fb.TensorType.FLOAT32

    def twinned(subgraph: Any) -> list[int]:
        """The ends of ``subgraph`` that get a twin: int8 ones, and float32 inputs under ``pixels``."""
        image = (int8, float32) if pixels is not None else (int8,)
        ends = [t for t in (subgraph.inputs if inputs else []) if subgraph.tensors[t].type in image]
        return ends + [t for t in (subgraph.outputs if outputs else []) if subgraph.tensors[t].type == int8]

    if not any(twinned(subgraph) for subgraph in model.subgraphs):
        return False
    if model.buffers[0].data is not None and len(model.buffers[0].data):
        raise ValueError("the flatbuffer's buffer 0 is not empty")
    quantize = opcode(model, schema_fb.BuiltinOperator.QUANTIZE)
    dequantize = opcode(model, schema_fb.BuiltinOperator.DEQUANTIZE)
    for index, subgraph in enumerate(model.subgraphs):
        twins: dict[int, int] = {}
        chosen = twinned(subgraph)
        for slot, tensor in enumerate(subgraph.inputs):
            if tensor in chosen:  # a float32 input (a stem kept in float) takes its pixels through a DEQUANTIZE
                convert = quantize if subgraph.tensors[tensor].type == int8 else dequantize
                twins[tensor] = subgraph.inputs[slot] = _twin(subgraph, tensor, pixels)
                subgraph.operators.insert(0, unary_operator(convert, twins[tensor], tensor))
        for slot, tensor in enumerate(subgraph.outputs):
            if tensor in chosen:
                twins[tensor] = subgraph.outputs[slot] = _twin(subgraph, tensor)
                subgraph.operators.append(unary_operator(dequantize, tensor, twins[tensor]))
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                for mapping in (*signature.inputs, *signature.outputs):
                    mapping.tensorIndex = twins.get(mapping.tensorIndex, mapping.tensorIndex)
    return True

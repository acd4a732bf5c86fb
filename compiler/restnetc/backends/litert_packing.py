"""Whether XNNPACK may pack each weight of a LiteRT program once for all its signatures.

XNNPACK's weight cache finds packed weights by the operator's kernel and bias buffers (and its shape), while
packing folds in more than those bytes: for int8 the quantization of the operator's input, output and kernel
(the input zero point goes into the packed bias, the requantization scales beside it). Two signatures that read
one kernel and bias buffer under different quantizations would therefore share a packing made for one of them
and compute wrong results. A program may share its packings only when every operator reading a pair of
constant buffers reads it under one quantization and one set of options; this module checks that on the file.
"""

from __future__ import annotations

from typing import Any

from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.tools import flatbuffer_utils

from restnetc.backends.litert_interface import quantization

_OPS = schema_fb.BuiltinOperator
_OPERANDS: dict[int, tuple[int, int, int | None]] = {  # operator: indices of its (input, kernel, bias) inputs
    _OPS.CONV_2D: (0, 1, 2),
    _OPS.DEPTHWISE_CONV_2D: (0, 1, 2),
    _OPS.FULLY_CONNECTED: (0, 1, 2),
    _OPS.TRANSPOSE_CONV: (2, 1, 3),
    _OPS.BATCH_MATMUL: (0, 1, None),
}
"""The operators XNNPACK packs constant weights for."""


def _options(op: Any) -> tuple[object, ...]:
    options = op.builtinOptions
    return () if options is None else tuple(sorted((k, repr(v)) for k, v in vars(options).items()))


def _constant(model: Any, buffer: int) -> bool:
    """Whether ``buffer`` holds bytes (buffer 0 and an empty one stand for a tensor computed at run time)."""
    if not 0 < buffer < len(model.buffers):
        return False
    stored = model.buffers[buffer]
    return (stored.data is not None and len(stored.data) > 0) or bool(stored.size)


def packing_conflicts(data: bytes) -> tuple[str, ...]:
    """Each place where an operator of the ``.tflite`` program ``data`` reads a constant kernel and bias that
    another operator also reads, under another quantization or other options; empty when none does."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    names = {int(d.subgraphIndex): d.signatureKey.decode() for d in model.signatureDefs or []}
    first: dict[tuple[int, int], tuple[tuple[object, ...], str]] = {}
    conflicts: list[str] = []
    for s, subgraph in enumerate(model.subgraphs):
        for k, op in enumerate(subgraph.operators or []):
            code = flatbuffer_utils.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            if code not in _OPERANDS:
                continue
            inputs = [int(i) for i in op.inputs]
            data_in, kernel_in, bias_in = (
                inputs[i] if i is not None and i < len(inputs) else -1 for i in _OPERANDS[code]
            )
            kernel = subgraph.tensors[kernel_in].buffer
            if not _constant(model, kernel):
                continue  # weights computed at run time are packed on every run, never cached
            bias = subgraph.tensors[bias_in].buffer if bias_in >= 0 else -1
            bias = bias if _constant(model, bias) else -1  # XNNPACK sees no bias either way
            tensors = (data_in, kernel_in, int(op.outputs[0]))
            reading = (*(quantization(subgraph.tensors[t]) for t in tensors), _options(op))
            where = f"signature {names.get(s, s)!r} operator {k}"
            seen = first.setdefault((kernel, bias), (reading, where))
            if seen[0] != reading:
                conflicts.append(
                    f"{where} reads kernel buffer {kernel} and bias buffer {bias} under another quantization "
                    f"than {seen[1]}"
                )
    return tuple(conflicts)

"""Each int8 op LiteRT's XNNPACK delegate takes only in float computed in float, between the int8 tensors it joined.

litert-torch's converter makes any ``DEQUANTIZE -> op -> QUANTIZE`` with an int8 kernel an int8 op, and has no
per-op setting to keep one float (leaving the op's input or output unquantized in PT2E would make the linear layer
on the other side float instead). TFLite has an int8 GELU (a table of the op on every int8 input value), but the
XNNPACK delegate of ai-edge-litert 2.3.0 takes GELU and HARD_SWISH in float only, so each ran on TFLite's own
kernel between two delegate partitions: the zoo's int8 DeiTs ran in 7 partitions around their 6 GELUs. This edit
of the flatbuffer computes each such op in float between a DEQUANTIZE of its int8 input and a QUANTIZE to its int8
output, with those tensors' own scales: the values the table holds, computed per element, and all delegated.
"""

from __future__ import annotations

from typing import Any

from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.tools import flatbuffer_utils

from restnetc.backends.litert_interface import opcode

FLOAT_ONLY = frozenset({schema_fb.BuiltinOperator.GELU, schema_fb.BuiltinOperator.HARD_SWISH})
"""The ops XNNPACK's TFLite delegate takes in float only that TFLite also runs in int8."""


def _float_twin(subgraph: Any, index: int) -> int:
    """A float32 tensor shaped like tensor ``index``, in the flatbuffer's empty buffer (the runtime allocates it);
    its index."""
    old = subgraph.tensors[index]
    twin = schema_fb.TensorT()
    twin.shape, twin.shapeSignature = old.shape, old.shapeSignature
    twin.name = (old.name or b"") + b"_float32"
    twin.type, twin.buffer = schema_fb.TensorType.FLOAT32, 0
    subgraph.tensors.append(twin)
    return len(subgraph.tensors) - 1


def computed_in_float(model: Any) -> int:
    """Edit ``model`` (a ``schema_py_generated.ModelT`` of its own, ``litert_compact.parse``) in place: each op of
    ``FLOAT_ONLY`` whose input and output are int8 reads a DEQUANTIZE of its input and writes a QUANTIZE to its
    output, in float32 between them. Returns how many ops it changed."""
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]
    changed = 0
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            int8 = all(subgraph.tensors[t].type == schema_fb.TensorType.INT8 for t in (*op.inputs, *op.outputs))
            if codes[op.opcodeIndex] in FLOAT_ONLY and len(op.inputs) == len(op.outputs) == 1 and int8:
                (source,), (result,) = op.inputs, op.outputs
                op.inputs, op.outputs = [_float_twin(subgraph, source)], [_float_twin(subgraph, result)]
                dequantize = schema_fb.OperatorT()
                dequantize.opcodeIndex = opcode(model, schema_fb.BuiltinOperator.DEQUANTIZE)
                dequantize.inputs, dequantize.outputs = [source], list(op.inputs)
                quantize = schema_fb.OperatorT()
                quantize.opcodeIndex = opcode(model, schema_fb.BuiltinOperator.QUANTIZE)
                quantize.inputs, quantize.outputs = list(op.outputs), [result]
                operators += [dequantize, op, quantize]
                changed += 1
            else:
                operators.append(op)
        subgraph.operators = operators
    return changed

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

from restnetc.backends.litert_interface import float_tensor_like, opcode, unary_operator

FLOAT_ONLY = frozenset({schema_fb.BuiltinOperator.GELU, schema_fb.BuiltinOperator.HARD_SWISH})
"""The ops XNNPACK's TFLite delegate takes in float only that TFLite also runs in int8."""


def computed_in_float(model: Any) -> None:
    """Edit ``model`` (a ``schema_py_generated.ModelT`` of its own, ``litert_compact.parse``) in place: each op of
    ``FLOAT_ONLY`` whose input and output are int8 reads a DEQUANTIZE of its input and writes a QUANTIZE to its
    output, in float32 between them."""
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(code) for code in model.operatorCodes]
    for subgraph in model.subgraphs:
        operators = []
        for op in subgraph.operators:
            tensors = [subgraph.tensors[t] for t in (*op.inputs, *op.outputs)]
            int8 = all(tensor.type == schema_fb.TensorType.INT8 for tensor in tensors)
            if codes[op.opcodeIndex] not in FLOAT_ONLY or len(tensors) != 2 or not int8:
                operators.append(op)
                continue
            (source,), (result,) = op.inputs, op.outputs
            op.inputs = [float_tensor_like(subgraph, source)]
            op.outputs = [float_tensor_like(subgraph, result)]
            dequantize = unary_operator(opcode(model, schema_fb.BuiltinOperator.DEQUANTIZE), source, op.inputs[0])
            quantize = unary_operator(opcode(model, schema_fb.BuiltinOperator.QUANTIZE), op.outputs[0], result)
            operators += [dequantize, op, quantize]
        subgraph.operators = operators

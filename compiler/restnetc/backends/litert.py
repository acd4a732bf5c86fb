"""LiteRT: litert-torch conversion (int8 through its PT2E quantizer) -> ``.tflite``; run with ai-edge-litert.

An image model's ``.tflite`` is what MediaPipe and Android tooling expect:
- its 4-D input is channels-last (NHWC), the layout TFLite computes in: the converter then needs no transpose
  at the input (and folds the stem's pad into its convolution). Its runners (``restnetc.runners.litert``) still
  take NCHW batches and reorder them, as the shim does for an ``NHWC`` artifact;
- an int8 model takes and returns float32, with one quantize and one dequantize inside (``litert_interface``);
- ``describe`` stores its TFLite metadata (``litert_metadata``).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import litert_torch
import torch
from ai_edge_litert import schema_py_generated as schema_fb
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.tools import flatbuffer_utils
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize.quant_config import QuantConfig
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends import litert_metadata, litert_packing
from restnetc.backends.base import (
    WHOLE_MODEL,
    Backend,
    DelegationReport,
    Ends,
    EntryPoint,
    Lowered,
    LoweredProgram,
    ModelCard,
    Packing,
    check_entry_points,
)
from restnetc.backends.litert_compact import parse, serialize
from restnetc.backends.litert_float_ops import computed_in_float
from restnetc.backends.litert_interface import with_float_interface
from restnetc.backends.litert_lean import LeanQuantizer, register_channels_last_pad
from restnetc.backends.litert_pads import padded_with_zeros
from restnetc.config.target import Quantization
from restnetc.errors import RestnetcError
from restnetc.runners.litert import SIGNATURE, quantization
from restnetc.shim_abi import InputLayout, TensorQuantization


def _channels_last(
    graph: nn.Module, example: torch.Tensor, ends: Ends = WHOLE_MODEL
) -> tuple[nn.Module, torch.Tensor, InputLayout]:
    """``graph`` taking its NCHW image input channels-last (litert-torch's ``to_channel_last_io``), ``example`` so,
    and the layout: the artifact's input, as ``Lowered.input_layout`` records it. An inner end is kept as given."""
    if not ends.image_input or example.dim() != 4:
        return graph, example, "NCHW"
    nhwc = example.permute(0, 2, 3, 1).contiguous()
    return litert_torch.to_channel_last_io(graph, args=[0]), nhwc, "NHWC"


def _check_pixels(pixels: TensorQuantization | None, quantizer: Quantizer | None) -> None:
    """ValueError if raw uint8 ``pixels`` are asked of a float program (its input stays float32)."""
    if pixels is not None and quantizer is None:
        raise ValueError("litert: raw uint8 pixels are an int8 program's input; a float program takes float32")


def delegation(interpreter: Interpreter) -> DelegationReport:
    """Which nodes the XNNPACK delegate took, found from the graph itself.

    ``_get_ops_details`` lists the model's original nodes plus one DELEGATE node per partition. Walking back
    from each partition's outputs through producers, stopping at the partition's inputs, finds the nodes it
    replaced; the rest still run as TFLite kernels and are reported as fallbacks.
    """
    ops = interpreter._get_ops_details()
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): op["index"] for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    inputs_of = {op["index"]: [int(t) for t in op["inputs"]] for op in ops}
    covered: set[int] = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in covered:
                continue
            covered.add(node)
            stack.extend(t for t in inputs_of[node] if t not in boundary)
    fallback = Counter(op["op_name"] for op in ops if op["op_name"] != "DELEGATE" and op["index"] not in covered)
    return DelegationReport("TfLiteXNNPackDelegate", len(delegates), len(covered), dict(fallback))


def _flatbuffer(
    converted: Any, inputs: bool = True, outputs: bool = True, pixels: TensorQuantization | None = None
) -> bytes:
    """The ``.tflite`` bytes of a litert-torch conversion, parsed and written once: each int8 op XNNPACK takes only
    in float computed in float (``litert_float_ops``), each PADV2 that pads as PAD does a PAD (``litert_pads``),
    the int8 ends ``inputs`` and ``outputs`` float32 or raw ``pixels`` (``litert_interface``), each repeated vector
    stored once (``litert_compact``)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        converted.export(str(path))
        model = parse(path.read_bytes())
    computed_in_float(model)
    padded_with_zeros(model)
    with_float_interface(model, inputs, outputs, pixels)
    return serialize(model)


def _subgraph(model: Any, signature: str) -> int:
    """The index of ``signature``'s subgraph in the flatbuffer object ``model``."""
    index = next((d.subgraphIndex for d in model.signatureDefs if d.signatureKey.decode() == signature), None)
    if index is None:
        raise RestnetcError(f"the program has no signature {signature!r}")
    return int(index)


_OPERATOR_NAMES = {code: name for name, code in vars(schema_fb.BuiltinOperator).items() if not name.startswith("_")}


def _operator_name(code: Any) -> str:
    """A flatbuffer operator code's name: the builtin's (``CONV_2D``), or a custom op's own."""
    builtin = flatbuffer_utils.get_builtin_code_from_operator_code(code)
    if builtin == schema_fb.BuiltinOperator.CUSTOM:
        return str(code.customCode.decode())
    return str(_OPERATOR_NAMES.get(builtin, f"builtin:{builtin}"))


def _primary(data: bytes, signature: str) -> bytes:
    """The program with ``signature``'s subgraph swapped into first place (its signature map fixed).

    The interpreter's op listing covers the first subgraph only; this copy lets ``delegation`` see another
    signature's. It is for analysis only: subgraph order has no meaning for a program without control flow.
    """
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    index = _subgraph(model, signature)
    if index == 0:
        return data
    model.subgraphs[0], model.subgraphs[index] = model.subgraphs[index], model.subgraphs[0]
    for definition in model.signatureDefs:
        definition.subgraphIndex = {0: index, index: 0}.get(definition.subgraphIndex, definition.subgraphIndex)
    return serialize(model)


def _entry_point(data: bytes, signature: str, layout: InputLayout) -> EntryPoint:
    """What signature ``signature`` of the program ``data`` reports: its delegation and its I/O quantization."""
    interpreter = Interpreter(model_content=_primary(data, signature), num_threads=1)
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner(signature)
    ((_, source),) = runner.get_input_details().items()
    ((_, sink),) = runner.get_output_details().items()
    return EntryPoint(signature, delegation(interpreter), quantization(source), quantization(sink), input_layout=layout)


class LiteRtBackend(Backend):
    """``.tflite`` flatbuffers, run by ``restnetc.runners.litert``."""

    name = "litert"
    suffix = ".tflite"
    quantizations = frozenset({Quantization.INT8, Quantization.FP32})
    fold_quantize = False

    def __init__(self) -> None:
        register_channels_last_pad()

    def compile(
        self, graph: nn.Module, example: torch.Tensor, quantizer: Quantizer | None, ends: Ends = WHOLE_MODEL
    ) -> Lowered:
        _check_pixels(ends.pixels, quantizer)
        quant_config = None if quantizer is None else QuantConfig(pt2e_quantizer=quantizer)
        graph, example, layout = _channels_last(graph, example, ends)
        converted = litert_torch.convert(graph, (example,), quant_config=quant_config)
        data = _flatbuffer(converted, inputs=ends.image_input, outputs=ends.logits_output, pixels=ends.pixels)
        interpreter = Interpreter(model_content=data, num_threads=1)
        interpreter.allocate_tensors()
        source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        return Lowered(
            data,
            delegation(interpreter),
            quantization(source),
            quantization(sink),
            SIGNATURE,
            input_layout=layout,
        )

    def compile_program(
        self,
        graphs: Mapping[str, nn.Module],
        example: torch.Tensor,
        quantizer: Quantizer | None,
        pixels: TensorQuantization | None = None,
    ) -> LoweredProgram:
        check_entry_points(graphs)
        _check_pixels(pixels, quantizer)
        # QuantConfig reads only whether the quantizer is static or dynamic; each graph carries its own scales.
        quant_config = None if quantizer is None else QuantConfig(pt2e_quantizer=quantizer)
        names = iter((name, *_channels_last(graph, example)) for name, graph in graphs.items())
        first, graph, channels_last, layout = next(names)
        converter = litert_torch.signature(first, graph, (channels_last,))
        for name, graph, channels_last, _ in names:
            converter = converter.signature(name, graph, (channels_last,))
        data = _flatbuffer(converter.convert(quant_config=quant_config), pixels=pixels)
        return LoweredProgram(data, tuple(_entry_point(data, name, layout) for name in graphs))

    def packing(self, data: bytes) -> Packing:
        """Checked on the file (``litert_packing``): shared unless an operator reads a kernel and bias another
        one reads under another quantization."""
        return Packing(checked=True, conflicts=litert_packing.packing_conflicts(data))

    def describe(self, data: bytes, card: ModelCard) -> bytes:
        """TFLite metadata from ``card``, written with MediaPipe's writers (``litert_metadata``)."""
        return litert_metadata.write(data, card)

    def card_writer(self) -> str | None:
        return None if litert_metadata.problem() is not None else f"mediapipe {litert_metadata.version()}"

    def describe_missing(self) -> str | None:
        return litert_metadata.problem()

    def int8_quantizer(self) -> LeanQuantizer:
        quantizer = LeanQuantizer()
        quantizer.set_global(pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
        return quantizer

    def operators(self, data: bytes, entry_point: str) -> dict[str, int]:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
        codes = model.operatorCodes
        ops = model.subgraphs[_subgraph(model, entry_point)].operators
        return dict(Counter(_operator_name(codes[op.opcodeIndex]) for op in ops))

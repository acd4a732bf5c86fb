"""LiteRT: litert-torch conversion (int8 through its PT2E quantizer) -> ``.tflite``; run with ai-edge-litert."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import litert_torch
import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter
from litert_torch.quantize import pt2e_quantizer
from litert_torch.quantize.quant_config import QuantConfig
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends.base import Backend, DelegationReport, Lowered, Runner
from restnetc.config.target import Quantization
from restnetc.shim_abi import TensorQuantization

SIGNATURE = "serving_default"


def _quantization(detail: dict[str, Any]) -> TensorQuantization | None:
    if detail["dtype"] == np.float32:
        return None
    scale, zero_point = detail["quantization"]
    return TensorQuantization(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def _input(image: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``image`` in the input tensor's type: quantized with its scale and zero point when it is integer."""
    q = _quantization(detail)
    if q is None:
        return image
    info = np.iinfo(q.dtype)
    return np.clip(np.round(image / q.scale + q.zero_point), info.min, info.max).astype(q.dtype)


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


class LiteRtBackend(Backend):
    """``.tflite`` flatbuffers; run with ``ai_edge_litert``'s interpreter (XNNPACK on by default)."""

    name = "litert"
    suffix = ".tflite"
    quantizations = frozenset({Quantization.INT8, Quantization.FP32})
    fold_quantize = False

    def compile(self, graph: nn.Module, example: torch.Tensor, quantizer: Quantizer | None) -> Lowered:
        quant_config = None if quantizer is None else QuantConfig(pt2e_quantizer=quantizer)
        edge = litert_torch.convert(graph, (example,), quant_config=quant_config)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"model{self.suffix}"
            edge.export(str(path))
            data = path.read_bytes()
        interpreter = Interpreter(model_content=data, num_threads=1)
        interpreter.allocate_tensors()
        return Lowered(
            data,
            delegation(interpreter),
            _quantization(interpreter.get_input_details()[0]),
            _quantization(interpreter.get_output_details()[0]),
            SIGNATURE,
        )

    def int8_quantizer(self) -> pt2e_quantizer.PT2EQuantizer:
        return pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
        )

    def load(self, path: Path, threads: int) -> Runner:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        source, sink = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        sink_q = _quantization(sink)

        def run(batch: np.ndarray) -> np.ndarray:
            outputs = []
            for image in np.split(batch, len(batch)):
                interpreter.set_tensor(source["index"], _input(image, source))
                interpreter.invoke()
                out = interpreter.get_tensor(sink["index"])
                if sink_q is not None:
                    out = (out.astype(np.float32) - sink_q.zero_point) * sink_q.scale
                outputs.append(out.astype(np.float32))
            return np.concatenate(outputs)

        return run

    def invoker(self, path: Path, threads: int, example: np.ndarray) -> Callable[[], object]:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]
        interpreter.set_tensor(source["index"], _input(example, source))
        invoke: Callable[[], object] = interpreter.invoke
        return invoke

"""LiteRT's runtime: ``.tflite`` programs in ``ai_edge_litert``'s interpreter (XNNPACK on by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter, SignatureRunner

from restnetc.errors import RestnetcError
from restnetc.runners.base import Runner, Runtime
from restnetc.shim_abi import TensorQuantization

SIGNATURE = "serving_default"
"""The signature of a single-model program (litert-torch's default)."""


def quantization(detail: dict[str, Any]) -> TensorQuantization | None:
    """How the tensor the interpreter describes as ``detail`` is quantized; None when it is float32."""
    if detail["dtype"] == np.float32:
        return None
    scale, zero_point = detail["quantization"]
    return TensorQuantization(np.dtype(detail["dtype"]).name, float(scale), int(zero_point))


def input_for(batch: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """``batch`` as the input tensor ``detail`` takes it: reordered when the tensor is the NHWC form of an NCHW
    ``batch`` (an image artifact; any other tensor is fed as given), and in its type (quantized when integer)."""
    shape = tuple(int(d) for d in detail["shape"])
    if batch.ndim == 4 and shape != batch.shape and shape == (*batch.shape[:1], *batch.shape[2:], batch.shape[1]):
        batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
    q = quantization(detail)
    return batch if q is None else q.quantize(batch)


class _Program:
    """A ``.tflite`` in the interpreter: its signatures load on demand."""

    def __init__(self, path: Path, threads: int) -> None:
        self.path = path
        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)

    def signature(self, name: str) -> SignatureRunner:
        """Signature ``name``'s runner; RestnetcError naming the program's signatures if it has none of that name."""
        signatures = self.interpreter.get_signature_list()
        if name not in signatures:
            raise RestnetcError(f"{self.path}: no signature {name!r} (it has {sorted(signatures)})")
        return self.interpreter.get_signature_runner(name)

    def load(self, entry_point: str | None = None) -> Runner:
        runner = self.signature(entry_point or SIGNATURE)
        ((source_name, source),) = runner.get_input_details().items()
        ((sink_name, sink),) = runner.get_output_details().items()
        sink_q = quantization(sink)

        def run(batch: np.ndarray) -> np.ndarray:
            outputs = []
            for image in np.split(batch, len(batch)):
                out = runner(**{source_name: input_for(image, source)})[sink_name]
                outputs.append(out.astype(np.float32) if sink_q is None else sink_q.dequantize(out))
            return np.concatenate(outputs)

        return run


class LiteRtRuntime(Runtime):
    """Each program sizes its own XNNPACK thread pool (``threads`` at open)."""

    def open(self, path: Path, threads: int) -> _Program:
        return _Program(path, threads)

    def invoker(
        self, path: Path, threads: int, example: np.ndarray, entry_point: str | None = None
    ) -> Callable[[], object]:
        runner = _Program(path, threads).signature(entry_point or SIGNATURE)
        ((source_name, source),) = runner.get_input_details().items()
        runner(**{source_name: input_for(example, source)})  # allocates the subgraph, sets the input
        # The bare invocation of the signature's subgraph, as the runner itself calls it (``Interpreter.invoke``
        # runs the first subgraph only); the input stays set between calls.
        wrapper, subgraph = runner._interpreter_wrapper, runner._subgraph_index
        return lambda: wrapper.Invoke(subgraph)

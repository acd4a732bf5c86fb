"""Every ``.tflite`` restnetc writes stores each repeated vector and string of its flatbuffer once.

TFLite's converter writes a vector for every field of every tensor: an int8 weight's per-channel scales (float32)
and zero points (int64, all 0 for symmetric weights), its shape, its name. Per-channel quantization parameters
cost about 12 bytes per output channel, and the zero points are the same vector of zeros for every tensor with as
many channels; in a ladder program every signature repeats the scales of the weights the rungs share. A flatbuffer
may point any number of tables at one vector (what ``Builder.CreateSharedString`` does for strings), so
``compact`` writes each distinct vector (by element type and bytes) and string once and points every use at it.
The program is the same to the interpreter: it reads the same values through the same fields.

Tensor names are kept only on each subgraph's inputs and outputs: the interpreter reads no other (a signature
names its ends itself), and the converter's names (module paths, ``arith.constant12``) cost 60-200 bytes per
tensor, 9% of a zoo DeiT-Ti's int8 file (``benchmarks/RESULTS.md`` section 12).
"""

from __future__ import annotations

import copy
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert.tools import flatbuffer_utils

_IDENTIFIER = b"TFL3"
"""The TFLite flatbuffer's file identifier."""


class _SharingBuilder(flatbuffers.Builder):  # type: ignore[misc]
    """A builder that returns the offset of an identical vector or string written before instead of a copy."""

    def __init__(self) -> None:
        super().__init__(1024)
        self._written: dict[tuple[str, bytes], int] = {}

    def CreateNumpyVector(self, x: np.ndarray) -> int:
        key = (x.dtype.str, x.tobytes())
        if key not in self._written:
            self._written[key] = super().CreateNumpyVector(x)
        return self._written[key]

    def CreateString(self, s: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> int:
        key = ("string", s if isinstance(s, bytes) else s.encode(encoding, errors))
        if key not in self._written:
            self._written[key] = super().CreateString(s, encoding, errors)
        return self._written[key]


def serialize(model: Any) -> bytes:
    """The flatbuffer of ``model`` (a ``schema_py_generated.ModelT``) with each distinct vector and string once and
    no tensor names but its subgraphs' inputs' and outputs' (``model`` loses the others)."""
    for subgraph in model.subgraphs:
        ends = {int(i) for vector in (subgraph.inputs, subgraph.outputs) if vector is not None for i in vector}
        for index, tensor in enumerate(subgraph.tensors):
            if index not in ends:
                tensor.name = None
    builder = _SharingBuilder()
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    return bytes(builder.Output())


def parse(data: bytes) -> Any:
    """The flatbuffer ``data`` as a ``schema_py_generated.ModelT`` to edit: its arrays are its own. The object API
    reads vectors as views of the buffer, and in a compact flatbuffer one vector serves many fields (a subgraph's
    outputs and its last operator's, say), so an edit through one view would change them all."""
    return copy.deepcopy(flatbuffer_utils.convert_bytearray_to_object(bytearray(data)))


def compact(data: bytes) -> bytes:
    """The flatbuffer ``data`` (nothing appended to it) written again by ``serialize``: the same program."""
    return serialize(flatbuffer_utils.convert_bytearray_to_object(bytearray(data)))

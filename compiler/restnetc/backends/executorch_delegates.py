"""The XNNPACK graphs inside an ExecuTorch program, decoded from the ``.pte`` file itself.

Each XNNPACK delegate blob is a header, a flatbuffer graph and (for constants not stored as named data) an inline
constant section; the graph is decoded with ExecuTorch's own ``schema.fbs`` and ``flatc`` into the dataclasses of
``xnnpack_graph_schema``, as ExecuTorch's tooling reads flatbuffers back.
"""

from __future__ import annotations

import importlib.resources
import json
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from executorch.backends.xnnpack.serialization import xnnpack_graph_schema as xnn
from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
from executorch.exir._serialize._dataclass import _json_to_dataclass
from executorch.exir._serialize._flatbuffer import _flatc_decompile
from executorch.exir._serialize._program import deserialize_pte_binary
from executorch.exir.schema import DataLocation, Program

DELEGATE = "XnnpackBackend"
"""The delegate id of XNNPACK blobs in a program."""

_NON_FINITE = re.compile(rb"([:\[,]\s*)(-?)(inf|nan)\b")
"""``flatc`` writes non-finite floats bare, which JSON does not allow."""


@dataclass(frozen=True)
class XnnpackDelegate:
    """One XNNPACK graph of a method, with the constant section of its blob (for constants stored inline)."""

    method: str
    index: int
    graph: xnn.XNNGraph
    constants: bytes


def _decode(blob: bytes) -> tuple[xnn.XNNGraph, bytes]:
    """The graph and inline constant section of one XNNPACK delegate blob."""
    header = XNNHeader.from_bytes(blob[: XNNHeader.EXPECTED_LENGTH])
    flatbuffer = blob[header.flatbuffer_offset : header.flatbuffer_offset + header.flatbuffer_size]
    schema = importlib.resources.files(xnn.__package__).joinpath("schema.fbs").read_bytes()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "schema.fbs").write_bytes(schema)
        (root / "graph.bin").write_bytes(flatbuffer)
        _flatc_decompile(scratch, str(root / "schema.fbs"), str(root / "graph.bin"))
        text = _NON_FINITE.sub(
            lambda m: m[1] + m[2] + (b"Infinity" if m[3] == b"inf" else b"NaN"), (root / "graph.json").read_bytes()
        )
    constants = blob[header.constant_data_offset : header.constant_data_offset + header.constant_data_size]
    return _json_to_dataclass(json.loads(text), xnn.XNNGraph), constants


def read_program(data: bytes) -> Program:
    """The program of the ``.pte`` file ``data``, deserialized once for ``delegates`` and the caller's own reading."""
    return deserialize_pte_binary(data).program


def delegates(program: Program, method: str | None = None) -> Iterator[XnnpackDelegate]:
    """Every XNNPACK graph of ``program`` (``read_program``), or of its method ``method``, in order (ValueError for
    a delegate stored outside the program's delegate data)."""
    for plan in program.execution_plan:
        if method is not None and plan.name != method:
            continue
        for index, delegate in enumerate(plan.delegates):
            if delegate.id == DELEGATE:
                if delegate.processed.location != DataLocation.INLINE:
                    raise ValueError(f"method {plan.name!r}: an XNNPACK delegate not stored inline")
                blob = program.backend_delegate_data[delegate.processed.index].data
                yield XnnpackDelegate(plan.name, index, *_decode(blob))


def node_counts(delegate: XnnpackDelegate) -> Counter[str]:
    """How many nodes of each XNNPACK type (``Conv2d``, ``Convert``, ...) the delegate's graph holds."""
    return Counter(type(node.xnode_union).__name__.removeprefix("XNN") for node in delegate.graph.xnodes)

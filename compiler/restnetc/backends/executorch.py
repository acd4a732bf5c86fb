"""ExecuTorch: torch.export -> (int8: PT2E with the XNNPACK quantizer) -> XNNPACK delegate -> ``.pte``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from executorch.devtools.backend_debug import get_delegation_info
from executorch.exir import to_edge_transform_and_lower
from executorch.runtime import Method, Runtime
from torch import nn
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends.base import Backend, DelegationReport, Lowered, Runner
from restnetc.config.target import Quantization
from restnetc.errors import RestnetcError

METHOD = "forward"


class ExecuTorchBackend(Backend):
    """``.pte`` programs with the XNNPACK delegate; run with ``executorch.runtime``."""

    name = "executorch"
    suffix = ".pte"
    quantizations = frozenset({Quantization.INT8, Quantization.FP32})
    fold_quantize = True

    def compile(self, graph: nn.Module, example: torch.Tensor, quantizer: Quantizer | None) -> Lowered:
        exported = torch.export.export(graph, (example,))
        try:
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
        except AssertionError as exc:
            if "dependency cycles" not in str(exc):
                raise
            # The XNNPACK partitioner can group nodes into partitions that depend on each other (seen on
            # ViT blocks); delegating op by op avoids the cycle at the cost of more, smaller partitions.
            edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner(per_op_mode=True)])
        info = get_delegation_info(edge.exported_program().graph_module)
        fallback = {
            op: breakdown.non_delegated
            for op, breakdown in info.delegation_by_operator.items()
            if breakdown.non_delegated and not op.startswith(("getitem", "alloc"))
        }
        report = DelegationReport("XnnpackBackend", info.num_delegated_subgraphs, info.num_delegated_nodes, fallback)
        program = edge.to_executorch()
        (plan,) = program.executorch_program.execution_plan
        return Lowered(program.buffer, report, None, None, METHOD, sum(plan.non_const_buffer_sizes))

    def int8_quantizer(self) -> XNNPACKQuantizer:
        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))

    def load(self, path: Path, threads: int) -> Runner:
        method = _method(path)

        def run(batch: np.ndarray) -> np.ndarray:
            outputs = [method.execute([torch.from_numpy(image)])[0] for image in np.split(batch, len(batch))]
            return torch.cat(outputs).numpy()

        return run

    def invoker(self, path: Path, threads: int, example: np.ndarray) -> Callable[[], object]:
        method, inputs = _method(path), [torch.from_numpy(example)]
        return lambda: method.execute(inputs)


def _method(path: Path) -> Method:
    method = Runtime.get().load_program(path).load_method(METHOD)
    if method is None:
        raise RestnetcError(f"{path}: no method {METHOD!r} in the program")
    return method

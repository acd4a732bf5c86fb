"""ExecuTorch: torch.export -> (int8: PT2E with the XNNPACK quantizer) -> XNNPACK delegate -> ``.pte``."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from operator import attrgetter

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
from executorch.devtools.backend_debug import get_delegation_info
from executorch.exir import to_edge_transform_and_lower
from executorch.exir.schema import DelegateCall, KernelCall
from torch import nn
from torch.export import ExportedProgram
from torchao.quantization.pt2e.quantizer import Quantizer

from restnetc.backends import executorch_delegates, executorch_packing
from restnetc.backends.base import (
    WHOLE_MODEL,
    Backend,
    DelegationReport,
    Ends,
    EntryPoint,
    Lowered,
    LoweredProgram,
    Packing,
    check_entry_points,
)
from restnetc.backends.bias_correction import bias_constant
from restnetc.backends.executorch_edge import rolls_as_slices, transform_passes
from restnetc.backends.executorch_lean import LeanXnnpackQuantizer, drop_requantize_after_pads
from restnetc.config.target import Quantization
from restnetc.errors import RestnetcError
from restnetc.runners.executorch import METHOD
from restnetc.shim_abi import TensorQuantization


class ExecuTorchBackend(Backend):
    """``.pte`` programs with the XNNPACK delegate, run by ``restnetc.runners.executorch``."""

    name = "executorch"
    suffix = ".pte"
    quantizations = frozenset({Quantization.INT8, Quantization.FP32})
    fold_quantize = True

    def compile(
        self, graph: nn.Module, example: torch.Tensor, quantizer: Quantizer | None, ends: Ends = WHOLE_MODEL
    ) -> Lowered:
        program = self.compile_program({METHOD: graph}, example, quantizer, ends.pixels)
        (entry,) = program.entry_points
        return Lowered(program.data, entry.delegation, None, None, METHOD, entry.planned_memory)

    def compile_program(
        self,
        graphs: Mapping[str, nn.Module],
        example: torch.Tensor,
        quantizer: Quantizer | None,
        pixels: TensorQuantization | None = None,
    ) -> LoweredProgram:
        check_entry_points(graphs)
        if pixels is not None:
            raise ValueError("executorch: a program's image input is float32; raw uint8 pixels are not taken")

        def exported() -> dict[str, ExportedProgram]:
            """Each graph exported afresh: lowering takes parameters out of its programs (folded or delegated)."""
            return {
                name: rolls_as_slices(torch.export.export(_own_biases(g), (example,))) for name, g in graphs.items()
            }

        try:
            edge = to_edge_transform_and_lower(exported(), transform_passes(), partitioner=[XnnpackPartitioner()])
        except AssertionError as exc:
            if "dependency cycles" not in str(exc):
                raise
            # The XNNPACK partitioner can group nodes into partitions that depend on each other (seen on
            # ViT blocks); delegating op by op avoids the cycle at the cost of more, smaller partitions.
            per_op = [XnnpackPartitioner(per_op_mode=True)]
            edge = to_edge_transform_and_lower(exported(), transform_passes(), partitioner=per_op)
        program = edge.to_executorch()
        planned = {plan.name: sum(plan.non_const_buffer_sizes) for plan in program.executorch_program.execution_plan}
        entries = tuple(
            EntryPoint(name, _delegation(edge.exported_program(name).graph_module), None, None, planned[name])
            for name in graphs
        )
        return LoweredProgram(program.buffer, entries)

    def packing(self, data: bytes) -> Packing:
        """Checked on the file (``executorch_packing``): shared unless a node reads a named kernel (and bias)
        another one reads under another quantization."""
        return Packing(checked=True, conflicts=executorch_packing.packing_conflicts(data))

    def refine(self, graph: torch.fx.GraphModule, quantizer: Quantizer) -> None:
        """Without the requantize after each pad that ``LeanXnnpackQuantizer`` observed with its input
        (``executorch_lean``): exact, so the simulation still computes what the program will."""
        if isinstance(quantizer, LeanXnnpackQuantizer):
            drop_requantize_after_pads(graph)

    def int8_quantizer(self) -> LeanXnnpackQuantizer:
        quantizer = LeanXnnpackQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
        return quantizer

    def operators(self, data: bytes, entry_point: str) -> dict[str, int]:
        program = executorch_delegates.read_program(data)
        plans = program.execution_plan
        plan = next((p for p in plans if p.name == entry_point), None)
        if plan is None:
            raise RestnetcError(f"the program has no method {entry_point!r} (it has {[p.name for p in plans]})")
        graphs = {
            d.index: executorch_delegates.node_counts(d) for d in executorch_delegates.delegates(program, entry_point)
        }
        calls: Counter[str] = Counter()
        for instruction in (i for chain in plan.chains for i in chain.instructions):
            call = instruction.instr_args
            if isinstance(call, KernelCall):
                operator = plan.operators[call.op_index]
                calls[f"{operator.name}.{operator.overload}" if operator.overload else operator.name] += 1
            elif isinstance(call, DelegateCall):
                calls[f"delegate:{plan.delegates[call.delegate_index].id}"] += 1
                calls.update({f"xnnpack:{node}": n for node, n in graphs.get(call.delegate_index, {}).items()})
        return dict(calls)


def _own_biases(graph: nn.Module) -> nn.Module:
    """An int8 graph in which each layer reads a bias constant of its own (a float model as it is): the same values,
    so the same result, on a new module sharing ``graph``'s other constants; ``graph`` is left as it was.

    XNNPACK's lowering stores a static int8 layer's bias as int32, scaled by that layer's input and weight scales,
    and a constant read by two layers once, as the first one scaled it. A ViT stitch maps its class token and its
    patch tokens with one weight and bias; when the two are quantized apart (``pt2e.float_residual_streams``),
    the second operator added a bias scaled for the other's input (DeiT-S -> DeiT-Ti stitch-00-00, 500
    validation images: 90.8% of argmaxes agreeing with the simulation, max logit difference 3.2; with a bias
    each, 98.6% and 0.31).
    """
    if not isinstance(graph, torch.fx.GraphModule):
        return graph
    copied = torch.fx.GraphModule(graph, copy.deepcopy(graph.graph))
    readers: dict[str, list[tuple[torch.fx.Node, torch.fx.Node]]] = {}  # bias constant: (layer, bias node)
    for node in copied.graph.nodes:
        if (bias := bias_constant(node)) is not None:
            readers.setdefault(str(bias.target), []).append((node, bias))
    made = 0
    for target, layers in readers.items():
        for layer, bias in layers[1:]:
            while hasattr(copied, name := f"_own_bias_{made}"):
                made += 1
            copied.register_buffer(name, attrgetter(target)(copied).detach().clone())
            with copied.graph.inserting_before(layer):
                layer.replace_input_with(bias, copied.graph.get_attr(name))
    copied.recompile()
    return copied


def _delegation(graph: torch.fx.GraphModule) -> DelegationReport:
    """What the XNNPACK delegate took in one method's edge graph, and every op left outside it."""
    info = get_delegation_info(graph)
    fallback = {
        op: breakdown.non_delegated
        for op, breakdown in info.delegation_by_operator.items()
        if breakdown.non_delegated and not op.startswith(("getitem", "alloc"))
    }
    return DelegationReport("XnnpackBackend", info.num_delegated_subgraphs, info.num_delegated_nodes, fallback)

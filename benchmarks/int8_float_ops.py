"""Would running in int8 what ExecuTorch's int8 transformers keep float make them faster? Levers measured, not shipped.

Shipped int8 programs keep each attention's two matmuls (``q @ k.T`` and ``probabilities @ v``) and each GELU in
float: ExecuTorch's XNNPACK partitioner takes a batch matmul or a GELU in fp32 only, though XNNPACK's runtime has
an int8 batch matmul (for a second operand with zero point 0) and computes an int8 unary op from a table. Two
levers, each alone, each with a partitioner whose config for that op also accepts static int8:
- ``int8_matmuls``: a quantizer that also observes each matmul's operands (the second symmetrically) and output;
- ``int8_gelu``: the shipped quantized graph without its (inference-time identity) dropouts, so each GELU reads a
  dequantize and feeds a quantize, the pattern the partitioner takes as static int8; the same values.
Each zoo model (``--models``, trained, 32 px) is lowered fp32, int8 as shipped and with each lever (128 real
training images, bias correction). Reports each program's XNNPACK partitions and ``Convert`` nodes, bytes, top-1
in the runtime and in its simulation on ``--images`` test images, each lever's paired difference against the
shipped program, and the bare invocation's time (``Runtime.invoker``, ``--threads`` threads, ``--rounds``
interleaved rounds of ``--runs`` calls, the median round; the programs side by side, each open alone while timed).

Usage: ``.venv/bin/python benchmarks/int8_float_ops.py [--models zoo_deit_ti zoo_deit_s]``. Writes
``benchmarks/results/int8_float_ops.json``, keeping the stored rows of models not run again.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
from executorch.backends.xnnpack.partition.config.generic_node_configs import (
    BMMConfig,
    GeluConfig,
    GenericNodePartitionerConfig,
)
from executorch.backends.xnnpack.partition.config.xnnpack_config import ConfigPrecisionType
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
from torchao.quantization.pt2e.observer import MinMaxObserver
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from int8_speed import interleaved_medians
from restnetc.backends import executorch, get_backend
from restnetc.backends.executorch import ExecuTorchBackend
from restnetc.backends.executorch_lean import LeanXnnpackQuantizer
from restnetc.backends.pt2e import export_batched
from restnetc.budget.measure import Opener, TimedEntry, opener
from restnetc.bundle.lowering import simulated_logits
from restnetc.config.project import Normalization, TimmModel
from restnetc.config.target import Backend
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import pick
from restnetc.models import decompose
from restnetc.models.factory import build_model
from restnetc.models.zoo import IMAGE_SIZE
from restnetc.native_output import captured
from simulation_gap import FASHION_MNIST

MATMULS = (torch.ops.aten.matmul.default, torch.ops.aten.bmm.default)
LEVERS = ("int8_matmuls", "int8_gelu")
SYMMETRIC = QuantizationSpec(
    dtype=torch.int8,
    quant_min=-127,
    quant_max=127,
    qscheme=torch.per_tensor_symmetric,
    is_dynamic=False,
    observer_or_fake_quant_ctr=MinMaxObserver.with_args(qscheme=torch.per_tensor_symmetric, eps=2**-12),
)
"""The second operand's spec: XNNPACK's int8 batch matmul takes it only with zero point 0."""


class _Int8MatmulQuantizer(LeanXnnpackQuantizer):
    """The shipped ExecuTorch quantizer, with every matmul's operands and output observed (the second operand
    symmetric, the rest as the global config observes activations)."""

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = super().annotate(model)
        activation = self.global_config.input_activation
        for node in model.graph.nodes:
            if node.op == "call_function" and node.target in MATMULS:
                first, second = node.args[:2]
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={first: activation, second: SYMMETRIC}, output_qspec=activation, _annotated=True
                )
        return model


class _Int8AttentionBackend(ExecuTorchBackend):
    """ExecuTorch lowering whose quantizer observes every matmul (compile it inside ``in_int8(BMMConfig)``)."""

    def int8_quantizer(self) -> _Int8MatmulQuantizer:
        quantizer = _Int8MatmulQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
        return quantizer


def _static_int8(config: type[GenericNodePartitionerConfig]) -> type[GenericNodePartitionerConfig]:
    """``config``, taking static int8 as well as fp32."""

    class StaticInt8(config):  # type: ignore[misc, valid-type]
        def supported_precision_types(self) -> list[ConfigPrecisionType]:
            return [ConfigPrecisionType.FP32, ConfigPrecisionType.STATIC_QUANT]

    return StaticInt8


def in_int8(*configs: type[GenericNodePartitionerConfig]) -> Any:
    """The backend's partitioner made with each of ``configs`` taking static int8 (a ``mock.patch``)."""
    int8 = {config: _static_int8(config) for config in configs}
    stock = [int8.get(config, config) for config in ALL_PARTITIONER_CONFIGS]
    return mock.patch.object(executorch, "XnnpackPartitioner", partial(XnnpackPartitioner, configs=stock))


def without_dropouts(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``graph`` with each dropout (an identity at inference) removed, in place; it computes the same values."""
    for node in list(graph.graph.nodes):
        if node.op == "call_function" and node.target == torch.ops.aten.dropout.default:
            node.replace_all_uses_with(node.args[0])
            graph.graph.erase_node(node)
    graph.recompile()
    return graph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["zoo_deit_ti", "zoo_deit_s"])
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    norm = Normalization.model_validate(common.zoo()["normalization"])
    calibration = load_fashion_mnist(FASHION_MNIST, "train", pick(args.calibration, 60000, 1), IMAGE_SIZE, norm)
    test = load_fashion_mnist(FASHION_MNIST, "test", pick(args.images, 10000, 0), IMAGE_SIZE, norm)
    labels = test.labels.numpy()
    shipped, matmuls = get_backend(Backend.EXECUTORCH), _Int8AttentionBackend()
    rows = []
    for arch in args.models:
        model = decompose(build_model(TimmModel.model_validate(common.zoo_model(arch)), IMAGE_SIZE)).eval()
        row: dict[str, Any] = {"model": arch}
        openers: dict[str, Opener] = {}
        correct: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory(prefix="int8-float-ops-") as work, captured():
            graph, quantizer = shipped.quantize(export_batched(model, calibration.images), calibration.images)
            matmul_graph, matmul_quantizer = matmuls.quantize(
                export_batched(model, calibration.images), calibration.images
            )
            programs = {
                "fp32": (model, shipped.compile(model, test.images[:1], None)),
                "int8": (graph, shipped.compile(graph, test.images[:1], quantizer)),
            }
            with in_int8(BMMConfig):
                programs["int8_matmuls"] = (
                    matmul_graph,
                    matmuls.compile(matmul_graph, test.images[:1], matmul_quantizer),
                )
            gelu_graph = without_dropouts(copy.deepcopy(graph))
            with in_int8(GeluConfig):
                programs["int8_gelu"] = (gelu_graph, shipped.compile(gelu_graph, test.images[:1], quantizer))
            for way, (source, lowered) in programs.items():
                path = Path(work) / f"{way}.pte"
                path.write_bytes(lowered.data)
                out = shipped.runtime.load(path, 1)(test.images.numpy())
                correct[way] = out.argmax(1) == labels
                row[way] = {
                    "partitions": lowered.delegation.partitions,
                    "ops_left_out": lowered.delegation.fallback_ops,
                    "converts": shipped.operators(lowered.data, lowered.entry_point).get("xnnpack:Convert", 0),
                    "bytes": len(lowered.data),
                    "runtime_top1": round(float(correct[way].mean() * 100), 2),
                    "simulation_top1": round(
                        float((simulated_logits(source, test.images).argmax(1).numpy() == labels).mean() * 100), 2
                    ),
                }
                openers[way] = opener(TimedEntry(Backend.EXECUTORCH.value, path, test.images[:1].numpy()), args.threads)
            median = interleaved_medians(openers, args.rounds, args.runs)
        for lever in LEVERS:
            row[f"{lever}_minus_int8"] = common.paired(correct[lever], correct["int8"])
        row["median_ms"] = {way: round(ms, 4) for way, ms in median.items()}
        row["over_fp32"] = {way: round(median[way] / median["fp32"], 3) for way in ("int8", *LEVERS)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    settings = {key: getattr(args, key) for key in ("calibration", "images", "threads", "rounds", "runs")}
    common.store_rows("int8_float_ops", settings, rows, key="model")


if __name__ == "__main__":
    main()

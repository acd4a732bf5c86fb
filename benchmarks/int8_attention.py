"""Would int8 attention matmuls make ExecuTorch's int8 transformers faster? A lever measured, not shipped.

Shipped int8 programs keep each attention's two matmuls (``q @ k.T`` and ``probabilities @ v``) in float: neither
ExecuTorch's XNNPACK quantizer nor its partitioner takes a batch matmul in int8, though XNNPACK's runtime has one
for a second operand with zero point 0. This script adds what that needs: a quantizer that observes each matmul's
operands (the second symmetrically) and its output, and a partitioner whose batch-matmul config accepts static
int8. Each zoo model (``--models``, trained, 32 px) is lowered three ways: fp32, int8 as shipped, and int8 with
int8 attention matmuls (the backend's quantizer otherwise, 128 real training images, bias correction). Reports
each program's XNNPACK partitions and ``Convert`` nodes, bytes, top-1 in the runtime and in its simulation on
``--images`` test images, the paired difference of the int8-matmul program against the shipped one, and the
bare invocation's time (``Runtime.invoker``, ``--threads`` threads, ``--rounds`` interleaved rounds of ``--runs``
calls, the median round; the three programs side by side, each open alone while timed).

Usage: ``.venv/bin/python benchmarks/int8_attention.py [--models zoo_deit_ti zoo_deit_s]``. Writes
``benchmarks/results/int8_attention.json``, keeping the stored rows of models not run again.
"""

from __future__ import annotations

import argparse
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
from executorch.backends.xnnpack.partition.config.generic_node_configs import BMMConfig
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


class _Int8BatchMatmul(BMMConfig):  # type: ignore[misc]
    """ExecuTorch's batch-matmul partitioner config, taking static int8 as well as fp32."""

    def supported_precision_types(self) -> list[ConfigPrecisionType]:
        return [ConfigPrecisionType.FP32, ConfigPrecisionType.STATIC_QUANT]


class _Int8AttentionBackend(ExecuTorchBackend):
    """ExecuTorch lowering with int8 attention matmuls: ``compile`` inside ``int8_matmul_partitions()``."""

    def int8_quantizer(self) -> _Int8MatmulQuantizer:
        quantizer = _Int8MatmulQuantizer()
        quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
        return quantizer


def int8_matmul_partitions() -> Any:
    """The backend's partitioner made with the int8 batch-matmul config in place of the stock one."""
    configs = [_Int8BatchMatmul if config is BMMConfig else config for config in ALL_PARTITIONER_CONFIGS]
    return mock.patch.object(executorch, "XnnpackPartitioner", partial(XnnpackPartitioner, configs=configs))


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
        with tempfile.TemporaryDirectory(prefix="int8-attention-") as work, captured():
            graph, quantizer = shipped.quantize(export_batched(model, calibration.images), calibration.images)
            int8_graph, int8_quantizer = matmuls.quantize(export_batched(model, calibration.images), calibration.images)
            with int8_matmul_partitions():
                int8_matmul = matmuls.compile(int8_graph, test.images[:1], int8_quantizer)
            programs = {
                "fp32": (model, shipped.compile(model, test.images[:1], None)),
                "int8": (graph, shipped.compile(graph, test.images[:1], quantizer)),
                "int8_matmuls": (int8_graph, int8_matmul),
            }
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
        row["int8_matmuls_minus_int8"] = common.paired(correct["int8_matmuls"], correct["int8"])
        row["median_ms"] = {way: round(ms, 4) for way, ms in median.items()}
        row["over_fp32"] = {way: round(median[way] / median["fp32"], 3) for way in ("int8", "int8_matmuls")}
        print(json.dumps(row), flush=True)
        rows.append(row)
    settings = {key: getattr(args, key) for key in ("calibration", "images", "threads", "rounds", "runs")}
    common.store_rows("int8_attention", settings, rows, key="model")


if __name__ == "__main__":
    main()

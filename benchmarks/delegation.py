"""Does each backend's XNNPACK delegate take a whole zoo model, and what does it buy? fp32 and int8.

Each zoo model (``--models``, trained, 32 px) is decomposed as a build decomposes a parent and lowered with each of
``--backends`` in fp32 and int8 (the backend's quantizer, ``--calibration`` real training images, bias correction,
no float islands) two ways: ``shipped`` (explicit attention, ``models.registry.decompose``; VGG's head stretched
by resizing, ``models.vgg.StretchToKernel``; the graph rewrites of ``backends.executorch_edge``,
``backends.litert_float_ops`` and ``backends.litert_pads``; attention scores added to in float,
``backends.pt2e.float_attention_scores``) and ``before`` (the attention as timm set it, none of the others).
Reports each program's XNNPACK partitions and the ops left out, its largest logit difference on ``--images`` test
images against what it was compiled from (the eager model; the PT2E simulation for int8) as a share of that one's
largest logit, and the bare invocation's time (``Runtime.invoker``, ``--threads`` threads, ``--rounds`` interleaved
rounds of ``--runs`` calls, the median round; the four programs of a model side by side, each open alone while
timed).

Usage: ``.venv/bin/python benchmarks/delegation.py [--models zoo_deit_ti zoo_deit_s zoo_swin_ti zoo_vgg11
zoo_resnet18] [--backends executorch litert]``. Writes ``benchmarks/results/delegation.json``, keeping the stored
rows of (model, backend) not run again (with the same settings).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest import mock

import numpy as np
from torch import nn

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from int8_speed import interleaved_medians
from restnetc.backends import executorch, get_backend, litert, pt2e
from restnetc.backends.pt2e import export_batched
from restnetc.budget.measure import Opener, TimedEntry, opener
from restnetc.bundle.lowering import simulated_logits
from restnetc.config.project import Normalization, TimmModel
from restnetc.config.target import Backend
from restnetc.data.fashion_mnist import load_fashion_mnist
from restnetc.data.images import pick
from restnetc.models import decompose
from restnetc.models.factory import build_model
from restnetc.models.registry import attention_switches
from restnetc.models.vgg import StretchToKernel
from restnetc.models.zoo import IMAGE_SIZE
from restnetc.native_output import captured
from simulation_gap import FASHION_MNIST


@contextlib.contextmanager
def _before(attention: dict[nn.Module, bool]) -> Iterator[None]:
    """Lowering as before: each attention layer's ``fused_attn`` as timm set it (``attention``; ``decompose``
    switches it off), VGG's head pooled as timm pools it, none of ``executorch_edge``'s, ``litert_float_ops``' or
    ``litert_pads``' rewrites, and what is added to the attention scores quantized."""
    for module, fused in attention.items():
        module.fused_attn = fused
    with (
        mock.patch.object(executorch, "transform_passes", lambda: None),
        mock.patch.object(executorch, "rolls_as_slices", lambda program: program),
        mock.patch.object(litert, "computed_in_float", lambda model: 0),
        mock.patch.object(pt2e, "float_attention_scores", lambda model: None),
        mock.patch.object(litert, "padded_with_zeros", lambda model: None),
        mock.patch.object(StretchToKernel, "forward", lambda self, x: x),
    ):
        yield


WAYS: dict[str, Callable[[dict[nn.Module, bool]], contextlib.AbstractContextManager[None]]] = {
    "shipped": lambda attention: contextlib.nullcontext(),
    "before": _before,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["zoo_deit_ti", "zoo_deit_s", "zoo_swin_ti", "zoo_vgg11", "zoo_resnet18"]
    )
    parser.add_argument("--calibration", type=int, default=128)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--backends", nargs="+", type=Backend, default=[Backend.EXECUTORCH, Backend.LITERT])
    args = parser.parse_args()
    norm = Normalization.model_validate(common.zoo()["normalization"])
    calibration = load_fashion_mnist(FASHION_MNIST, "train", pick(args.calibration, 60000, 1), IMAGE_SIZE, norm)
    images = load_fashion_mnist(FASHION_MNIST, "test", pick(args.images, 10000, 0), IMAGE_SIZE, norm).images
    rows = []
    for arch, name in ((arch, name) for arch in args.models for name in args.backends):
        backend = get_backend(name)
        spec = TimmModel.model_validate(common.zoo_model(arch))
        calls: dict[str, Opener] = {}
        row: dict[str, object] = {"model": arch, "backend": str(name)}
        with tempfile.TemporaryDirectory(prefix="delegation-") as work:
            for way, context in WAYS.items():
                built = build_model(spec, IMAGE_SIZE)
                attention = {module: bool(module.fused_attn) for module in attention_switches(built)}
                model = decompose(built).eval()
                with context(attention), captured():
                    graph, quantizer = backend.quantize(export_batched(model, calibration.images), calibration.images)
                    lowered = {
                        "fp32": (model, backend.compile(model, images[:1], None)),
                        "int8": (graph, backend.compile(graph, images[:1], quantizer)),
                    }
                    for quantization, (source, program) in lowered.items():
                        path = Path(work) / f"{way}-{quantization}{backend.suffix}"
                        path.write_bytes(program.data)
                        out = backend.runtime.load(path, 1)(images.numpy())
                        expected = simulated_logits(source, images).numpy()
                        row[f"{way}_{quantization}"] = {
                            "partitions": program.delegation.partitions,
                            "ops_left_out": program.delegation.fallback_ops,
                            "relative_logit_difference": round(
                                float(np.abs(out - expected).max() / np.abs(expected).max()), 6
                            ),
                        }
                        entry = TimedEntry(name.value, path, images[:1].numpy())
                        calls[f"{way}_{quantization}"] = opener(entry, args.threads)
            median = interleaved_medians(calls, args.rounds, args.runs)
        row["median_ms"] = {key: round(ms, 4) for key, ms in median.items()}
        row["int8_over_fp32"] = {way: round(median[f"{way}_int8"] / median[f"{way}_fp32"], 3) for way in WAYS}
        row["shipped_over_before"] = {
            q: round(median[f"shipped_{q}"] / median[f"before_{q}"], 3) for q in ("fp32", "int8")
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    settings = {key: getattr(args, key) for key in ("calibration", "images", "threads", "rounds", "runs")}
    common.store_rows("delegation", settings, rows, key=("model", "backend"))


if __name__ == "__main__":
    main()

"""Post-training int8 quantization with PT2E, shared by every backend that consumes a PT2E graph."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import Quantizer


def quantize_pt2e(
    model: nn.Module,
    example: torch.Tensor,
    quantizer: Quantizer,
    calibration: torch.Tensor,
    float_modules: Sequence[str],
    fold_quantize: bool,
) -> torch.fx.GraphModule:
    """Export ``model``, insert observers per ``quantizer``, calibrate one image at a time, convert.

    The exported graph has a static batch of one (that is what ships), so calibration runs image by image.
    """
    for name in float_modules:
        quantizer.set_module_name(name, None)
    graph = torch.export.export(model, (example,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for image in calibration.split(1):
            prepared(image)
    converted: torch.fx.GraphModule = convert_pt2e(prepared, fold_quantize=fold_quantize)
    return converted

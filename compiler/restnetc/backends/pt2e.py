"""Post-training int8 quantization with PT2E, shared by every backend that consumes a PT2E graph."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from torchao.quantization.pt2e.quantizer import Quantizer


def _inside(node: torch.fx.Node, modules: Sequence[str]) -> bool:
    """Whether ``node`` was traced from one of ``modules`` (dotted names) or their children."""
    paths = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
    return any(path == name or path.startswith(name + ".") for path in paths for name in modules)


class _FloatIslands(Quantizer):  # type: ignore[misc]
    """Wraps a quantizer and removes its annotations from nodes of the given submodules, keeping them float.

    Neither the XNNPACK nor the litert-torch quantizer accepts "no config" for a module name, so the
    exclusion is done once here, on the annotated graph, for every backend alike.
    """

    def __init__(self, inner: Quantizer, modules: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.modules = tuple(modules)

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = self.inner.annotate(model)
        for node in model.graph.nodes:
            if _inside(node, self.modules):
                node.meta.pop("quantization_annotation", None)
        return model

    def validate(self, model: torch.fx.GraphModule) -> None:
        self.inner.validate(model)

    def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        return self.inner.transform_for_annotation(model)  # type: ignore[no-any-return]


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
    graph = torch.export.export(model, (example,)).module()
    prepared = prepare_pt2e(graph, _FloatIslands(quantizer, float_modules) if float_modules else quantizer)
    with torch.no_grad():
        for image in calibration.split(1):
            prepared(image)
    converted: torch.fx.GraphModule = convert_pt2e(prepared, fold_quantize=fold_quantize)
    return converted

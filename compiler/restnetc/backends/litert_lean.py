"""What litert-torch lacks for int8 graphs as lean as its fp32 ones: a channels-last constant pad, and annotations.

Found on EfficientNet-Lite0 (64 px, ``benchmarks/int8_speed.py``): litert-torch's int8 graph had 143 ops against
62 in fp32 (33 TRANSPOSE, 17 PAD, 23 QUANTIZE, 10 DEQUANTIZE more) and ran 1.5x slower than fp32. The gaps:

- Its layout pass (``optimize_layout_transposes_pass``) has no channels-last rewriter for ``aten.constant_pad_nd``,
  so every pad stays NCHW between two transposes. In fp32 the converter cancels them and folds the pad into the
  convolution; with quantize/dequantize pairs in between it cannot. ``register_channels_last_pad`` adds the
  rewriter through the pass's own registries.
- Its PT2E quantizer finds adds through ``source_fn_stack``, which non-strict ``torch.export`` no longer records:
  residual adds stay float, between a dequantize and a quantize. A pad or dropout gets an observer of its own,
  hence a requantize. ``LeanQuantizer`` fixes both on the annotated graph.
- It observes a convolution's output before a following ReLU6; so does XNNPACK's quantizer, and
  ``pt2e.observe_after_clamps`` fixes it for every backend.

``tests/test_backends.py`` checks the result: an int8 graph of pad, convolution, ReLU6 and residual add has no
TRANSPOSE, PAD, QUANTIZE or DEQUANTIZE beyond its fp32 graph's, so a litert-torch upgrade that changes these
internals fails there first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check, layout_rewrite
from litert_torch.quantize import pt2e_quantizer
from torch.fx import Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

from restnetc.backends.pt2e import annotation_of

aten = torch.ops.aten
_PASS_THROUGH = (aten.pad.default, aten.constant_pad_nd.default, aten.dropout.default)
"""Ops that move values without changing their range: they share their input's quantization parameters."""


def _pad_channels_last(x: torch.Tensor, pad: Sequence[int], value: float = 0.0) -> torch.Tensor:
    """``aten.constant_pad_nd`` of an NCHW pad list (``[left, right]`` or ``[left, right, top, bottom]``) on
    the same tensor stored NHWC: the channel dimension, now last, is not padded."""
    padded: torch.Tensor = aten.constant_pad_nd.default(x, [0, 0, *pad], value)
    return padded


def _rewrite_pad(node: Node) -> None:
    node.target = _pad_channels_last


def _pad_can_be_channels_last(node: Node) -> layout_check.NHWCable:
    """A 4-D constant pad of the two spatial dimensions at most, by constant amounts, can run channels-last; it
    need not."""
    pad = node.args[1]
    spatial = isinstance(pad, Sequence) and len(pad) <= 4 and all(isinstance(p, int) for p in pad)
    return layout_check.NHWCable(
        can_be=spatial and layout_check.is_4d(node) and layout_check.is_4d(node.args[0]), must_be=False
    )


def _padded_input(node: Node) -> list[Node]:
    """The one input whose layout matters to a pad: the padded tensor (the amounts are constants)."""
    source = node.args[0]
    return [source] if isinstance(source, Node) else []


def register_channels_last_pad() -> None:
    """Teach litert-torch's layout pass, for every conversion in this process, to keep constant pads
    channels-last (idempotent; a rewriter that litert-torch itself registers for the op is left in place)."""
    if aten.constant_pad_nd.default in layout_rewrite.rewriters:
        return
    layout_rewrite.rewriters.register(aten.constant_pad_nd)(_rewrite_pad)
    layout_check.nhwcable_node_checkers.register(aten.constant_pad_nd)(_pad_can_be_channels_last)
    layout_check.layout_sensitive_inputs_getters.register(aten.constant_pad_nd)(_padded_input)


def _is_float(node: Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, torch.Tensor) and value.dtype.is_floating_point


class LeanQuantizer(pt2e_quantizer.PT2EQuantizer):  # type: ignore[misc]
    """litert-torch's PT2E quantizer, with the graph annotated so that no add or pad stays float or requantizes:
    float adds quantized like any activation, pads and dropouts sharing their input's parameters. (Observing after
    ReLU6 is ``pt2e.observe_after_clamps``, for every backend.) Other ops its annotators find through
    ``source_fn_stack`` (mul, cat) still run in float."""

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = super().annotate(model)
        config = self.global_config
        for node in model.graph.nodes:
            source = node.args[0] if node.op == "call_function" and node.args else None
            if not isinstance(source, Node):
                continue
            if (
                node.target == aten.add.Tensor
                and annotation_of(node) is None
                and config is not None
                and _is_float(node)
            ):
                inputs = [a for a in node.args if isinstance(a, Node) and _is_float(a)]
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={a: config.input_activation for a in inputs},
                    output_qspec=config.output_activation,
                    _annotated=True,
                )
            elif node.target in _PASS_THROUGH and (before := annotation_of(source)) is not None and before.output_qspec:
                shared = SharedQuantizationSpec(source)
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={source: shared}, output_qspec=shared, _annotated=True
                )
        return model

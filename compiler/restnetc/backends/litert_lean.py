"""What litert-torch lacks for int8 graphs as lean as its fp32 ones and simulated as they run: a channels-last
constant pad, and annotations.

Mostly found on EfficientNet-Lite0 (64 px, ``benchmarks/int8_speed.py``): litert-torch's int8 graph had 143 ops
against 62 in fp32 (33 TRANSPOSE, 17 PAD, 23 QUANTIZE, 10 DEQUANTIZE more) and ran 1.5x slower than fp32. The gaps:

- Its layout pass (``optimize_layout_transposes_pass``) has no channels-last rewriter for ``aten.constant_pad_nd``,
  so every pad stays NCHW between two transposes. In fp32 the converter cancels them and folds the pad into the
  convolution; with quantize/dequantize pairs in between it cannot. ``register_channels_last_pad`` adds the
  rewriter through the pass's own registries.
- Its PT2E quantizer finds adds through ``source_fn_stack``, which non-strict ``torch.export`` no longer records:
  residual adds stay float, between a dequantize and a quantize. A pad or dropout gets an observer of its own,
  hence a requantize. ``LeanQuantizer`` fixes both on the annotated graph.
- A concatenation stays unannotated too, so the simulation joins its inputs in float, while the converted
  CONCATENATION forces them all to one scale. Found on stitched DeiT rungs (the plain arm of
  ``benchmarks/stitch_qat.py``): the stitch joins a class token of range about [-1.3, 1.5] to patch tokens of about
  [-4, 3]; the runtime clipped the patch tokens and ran up to 1.16 points below its simulation. ``LeanQuantizer``
  observes such a cat as one tensor, so the simulation computes what the runtime does.
- It observes a convolution's output before a following ReLU6; so does XNNPACK's quantizer, and
  ``pt2e.observe_after_clamps`` fixes it for every backend.

``tests/test_backends.py`` checks the result: an int8 graph of pad, convolution, ReLU6 and residual add has no
TRANSPOSE, PAD, QUANTIZE or DEQUANTIZE beyond its fp32 graph's, and a stitch's concatenation runs as simulated,
so a litert-torch upgrade that changes these internals fails there first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from litert_torch._convert.fx_passes.optimize_layout_transposes_pass import layout_check, layout_rewrite
from litert_torch.quantize import pt2e_quantizer
from torch.fx import Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpecBase, SharedQuantizationSpec

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


def _is_quantized(node: object) -> bool:
    """Whether ``node`` is a value the annotated graph quantizes (an annotation that only marks a node as taken,
    a convolution's before its ReLU, say, does not count)."""
    annotation = annotation_of(node) if isinstance(node, Node) else None
    return annotation is not None and annotation.output_qspec is not None


def _is_unannotated_cat_of_quantized(node: Node) -> bool:
    """A concatenation the annotators left float although every input it joins is quantized."""
    if node.op != "call_function" or node.target != aten.cat.default or annotation_of(node) is not None:
        return False
    tensors = node.args[0]
    return isinstance(tensors, Sequence) and all(_is_quantized(a) for a in tensors)


def _share_one_scale(cat: Node, first: QuantizationSpecBase) -> None:
    """Observe a concatenation's inputs and output as one tensor: TFLite's int8 CONCATENATION takes one scale
    for all of them, and a float cat in the simulation would hide the clipping of whichever input has the wider
    range."""
    tensors = list(cat.args[0])  # type: ignore[arg-type]
    shared = SharedQuantizationSpec((tensors[0], cat))
    inputs = {tensors[0]: first}
    for tensor in tensors[1:]:
        inputs.setdefault(tensor, shared)  # an input joined twice keeps one edge: one sharing its own would loop
    cat.meta["quantization_annotation"] = QuantizationAnnotation(
        input_qspec_map=inputs, output_qspec=shared, _annotated=True
    )


class LeanQuantizer(pt2e_quantizer.PT2EQuantizer):  # type: ignore[misc]
    """litert-torch's PT2E quantizer, with the graph annotated so that no add or pad stays float or requantizes
    and no concatenation of quantized values runs other than simulated: float adds quantized like any
    activation, pads and dropouts sharing their input's parameters, a concatenation whose inputs are all
    quantized observed as one tensor (one with a float input, an expanded class token say, stays float in the
    simulation and the runtime alike). (Observing after ReLU6 is ``pt2e.observe_after_clamps``, for every
    backend, and so is leaving in float an add that LayerNorm reads, ``pt2e.float_residual_streams``.) A mul its
    annotators find only through ``source_fn_stack`` still runs in float."""

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = super().annotate(model)
        config = self.global_config
        for node in model.graph.nodes:
            if _is_unannotated_cat_of_quantized(node) and config is not None:
                _share_one_scale(node, config.input_activation)
                continue
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
            elif node.target in _PASS_THROUGH and _is_quantized(source):
                shared = SharedQuantizationSpec(source)
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={source: shared}, output_qspec=shared, _annotated=True
                )
        return model

"""What ExecuTorch's XNNPACK quantizer lacks for int8 graphs as lean as its fp32 ones: pads that run in int8.

Found on EfficientNet-Lite0 (64 px, ``benchmarks/int8_speed.py``): its int8 XNNPACK graph held 34 ``Convert`` nodes
(quantize or dequantize inside the delegate) that its fp32 graph does not, two around each of 16 depthwise
convolutions' pads and one at each end, and ran at 0.77x its fp32 time (now 0.58x; LiteRT's int8: 0.46x). The
XNNPACK quantizer does not annotate pads, so a convolution's input is observed after its "same" pad: the pad then
runs in float between a dequantize and a quantize, and XNNPACK cannot fuse it into the convolution (it fuses a pad
only into its single consumer, and here that is a ``Convert``). ExecuTorch's own route for a zero pad is a pad that
reads a dequantize and feeds the convolution directly: its partitioner takes such a pad into the convolution's int8
partition (``ConvolutionConfig._get_act_deps``), ``InsertPadQDQPass`` makes it an int8 pad with its input's
parameters (a zero pad is the zero point, exactly), and XNNPACK fuses it into the convolution when the program
loads.

Two steps take that route. ``LeanXnnpackQuantizer`` observes a pad with its input's observer
(``observe_pads_with_their_input``); then ``drop_requantize_after_pads`` removes the quantize/dequantize pair that
leaves after each pad: it re-applies the parameters the pad's input was dequantized with, so dropping it changes
no value.

``tests/test_backends.py`` checks the result: an int8 graph of pads, convolutions, ReLU6 and residual adds has
the fp32 graph's XNNPACK nodes plus one ``Convert`` at each delegate's input and output, so an ExecuTorch upgrade
that changes this route fails there first.
"""

from __future__ import annotations

import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
from torch.fx import Node
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

from restnetc.backends.pt2e import annotation_of

aten = torch.ops.aten


def _zero_spatial_pad(node: Node) -> bool:
    """Whether ``node`` pads only the last two dimensions of a 4-D tensor, by constant non-negative amounts,
    with zeros: the pad ExecuTorch's XNNPACK partitioner takes into the convolution it feeds."""
    if node.target == aten.constant_pad_nd.default:
        value = node.args[2] if len(node.args) > 2 else node.kwargs.get("value", 0.0)
    elif node.target == aten.pad.default:
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value", None)
        if mode != "constant":
            return False
    else:
        return False
    amounts = node.args[1]
    return (
        value in (None, 0, 0.0)
        and isinstance(amounts, list | tuple)
        and len(amounts) <= 4
        and all(isinstance(a, int) and a >= 0 for a in amounts)
    )


def observe_pads_with_their_input(model: torch.fx.GraphModule) -> None:
    """Give each zero spatial pad that reads an observed value and feeds one 2-D convolution the observer of that
    value, shared by the pad's input and output (so calibration sees the padded tensor too). After
    ``drop_requantize_after_pads`` the pad reads a dequantize and the convolution reads the pad.

    A pad of a value without an observer of its own (the model's input) keeps the quantizer's choice: observed after
    the pad. Observing the input before it instead shifts the input's scale off the pixels' grid (0.0077852 against
    0.0078081, where 1/128 is exact), which cost EfficientNet-Lite2 a point of top-1 (measured)."""
    for pad in model.graph.nodes:
        if pad.op != "call_function" or not _zero_spatial_pad(pad) or len(pad.users) != 1:
            continue
        (conv,) = pad.users
        source, consumer = pad.args[0], annotation_of(conv)
        if conv.target != aten.conv2d.default or conv.args[0] is not pad or consumer is None:
            continue
        if pad not in consumer.input_qspec_map:
            continue
        before = annotation_of(source) if isinstance(source, Node) else None
        if before is None or before.output_qspec is None or annotation_of(pad) is not None:
            continue
        shared = SharedQuantizationSpec(source)
        pad.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={source: shared}, output_qspec=shared, _annotated=True
        )


_QUANTIZE = torch.ops.quantized_decomposed.quantize_per_tensor.default
_DEQUANTIZE = torch.ops.quantized_decomposed.dequantize_per_tensor.default


def drop_requantize_after_pads(graph: torch.fx.GraphModule) -> int:
    """Remove, after each zero pad that reads a dequantize, a following quantize/dequantize pair with the same
    parameters (as ``observe_pads_with_their_input`` leaves): the pad's values are already on that grid and its
    zeros are the zero point, so the pair changes no value. Returns how many pairs were removed."""
    removed = 0
    for pad in list(graph.graph.nodes):
        source = pad.args[0] if pad.op == "call_function" and pad.args else None
        if not _zero_spatial_pad(pad) or not isinstance(source, Node) or source.target != _DEQUANTIZE:
            continue
        if len(pad.users) != 1:
            continue
        (quantize,) = pad.users
        if quantize.target != _QUANTIZE or quantize.args[1:] != source.args[1:]:
            continue
        if any(user.target != _DEQUANTIZE or user.args[1:] != source.args[1:] for user in quantize.users):
            continue
        for dequantize in list(quantize.users):
            dequantize.replace_all_uses_with(pad)
            graph.graph.erase_node(dequantize)
        graph.graph.erase_node(quantize)
        removed += 1
    graph.recompile()
    return removed


class LeanXnnpackQuantizer(XNNPACKQuantizer):  # type: ignore[misc]
    """ExecuTorch's XNNPACK quantizer, with each zero pad before a convolution observed with its input
    (``observe_pads_with_their_input``); ``ExecuTorchBackend.refine`` then runs ``drop_requantize_after_pads`` on
    the converted graph."""

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        model = super().annotate(model)
        observe_pads_with_their_input(model)
        return model

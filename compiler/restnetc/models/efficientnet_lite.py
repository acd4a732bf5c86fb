"""EfficientNet-Lite from ``efficientnet-lite-pytorch``: stem conv, the MBConv blocks, conv head + fc."""

from __future__ import annotations

from efficientnet_lite_pytorch import EfficientNet
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


@register_family("efficientnet-lite", lambda m: isinstance(m, EfficientNet))
def decompose_efficientnet_lite(model: nn.Module) -> BlockModel:
    """Blocks are the MBConv blocks; drop-connect is a training-time regulariser and is not applied."""
    assert isinstance(model, EfficientNet)
    if model._global_params.local_pooling:
        raise ValueError("EfficientNet-Lite with local_pooling is not supported")
    stem = nn.Sequential(model._conv_stem, model._bn0, model._swish)
    pool = nn.Sequential(model._conv_head, model._bn1, model._swish, model._avg_pooling, nn.Flatten(1), model._dropout)
    head = TaskHead(pool=pool, classifier=model._fc)
    return BlockModel("efficientnet-lite", stem, list(model._blocks), head, Layout.NCHW)

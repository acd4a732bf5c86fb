"""timm ResNet family: stem (conv, bn, act, maxpool), every residual block in order, pooled fc head."""

from __future__ import annotations

from typing import cast

from timm.models.resnet import ResNet
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


@register_family("resnet", lambda m: isinstance(m, ResNet))
def decompose_resnet(model: nn.Module) -> BlockModel:
    """Blocks are the BasicBlocks/Bottlenecks of layer1..layer4."""
    assert isinstance(model, ResNet)
    stem = nn.Sequential(model.conv1, model.bn1, model.act1, model.maxpool)
    stages = [cast(nn.Sequential, stage) for stage in (model.layer1, model.layer2, model.layer3, model.layer4)]
    blocks = [block for stage in stages for block in stage]
    head = TaskHead(pool=model.global_pool, classifier=model.fc)
    return BlockModel("resnet", stem, blocks, head, Layout.NCHW)

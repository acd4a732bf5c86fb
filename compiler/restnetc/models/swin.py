"""timm Swin Transformer family: NHWC token grids; each stage's patch merging joins its first block."""

from __future__ import annotations

from typing import cast

from timm.models.swin_transformer import SwinTransformer
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


@register_family("swin", lambda m: isinstance(m, SwinTransformer))
def decompose_swin(model: nn.Module) -> BlockModel:
    """Blocks are the SwinTransformerBlocks of every stage; outputs are ``[N, H, W, C]``."""
    assert isinstance(model, SwinTransformer)
    blocks: list[nn.Module] = []
    for stage in model.layers:
        stage_blocks = cast(nn.Sequential, stage.blocks)
        for k, block in enumerate(stage_blocks):
            blocks.append(nn.Sequential(cast(nn.Module, stage.downsample), block) if k == 0 else block)
    classifier_head = model.head
    pool = nn.Sequential(model.norm, classifier_head.global_pool, classifier_head.drop)
    head = TaskHead(pool=pool, classifier=nn.Sequential(classifier_head.fc, classifier_head.flatten))
    return BlockModel("swin", model.patch_embed, blocks, head, Layout.NHWC)

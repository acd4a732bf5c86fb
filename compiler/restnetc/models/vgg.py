"""timm VGG family: each convolution with its norm, activation and pooling is one block."""

from __future__ import annotations

from timm.models.vgg import VGG
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


@register_family("vgg", lambda m: isinstance(m, VGG))
def decompose_vgg(model: nn.Module) -> BlockModel:
    """Split ``features`` before every Conv2d; the head is ConvMlp pre-logits plus the classifier."""
    assert isinstance(model, VGG)
    groups: list[list[nn.Module]] = []
    for layer in model.features:
        if isinstance(layer, nn.Conv2d) or not groups:
            groups.append([])
        groups[-1].append(layer)
    blocks: list[nn.Module] = [nn.Sequential(*group) for group in groups]
    classifier_head = model.head
    pool = nn.Sequential(model.pre_logits, classifier_head.global_pool, classifier_head.drop)
    head = TaskHead(pool=pool, classifier=nn.Sequential(classifier_head.fc, classifier_head.flatten))
    return BlockModel("vgg", nn.Identity(), blocks, head, Layout.NCHW)

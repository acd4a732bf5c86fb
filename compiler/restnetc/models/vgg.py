"""timm VGG family: each convolution with its norm, activation and pooling is one block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vgg import VGG
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


class StretchToKernel(nn.Module):
    """What timm's ``ConvMlp`` head does to a feature map smaller than its kernel, adaptive average pooling up to
    the kernel's size, spelled as bilinear resizing with aligned corners where the two agree (to float rounding):
    a 1 x 1 map (each output is the one value: VGG at 32 px) and an n x n map stretched to (2n - 1) x (2n - 1)
    (every other output the mean of two neighbours: VGG's 4x4 map at 128 px). Neither runtime's XNNPACK delegate
    takes that pooling (ExecuTorch ran it on a portable kernel, litert-torch spells it as gathers); both take the
    resize. Any other map passes unchanged, for ``ConvMlp`` to pool as before."""

    def __init__(self, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel

    def _agrees(self, size: int) -> bool:
        return size < self.kernel and (size == 1 or 2 * size - 1 == self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if not (self._agrees(height) and self._agrees(width)):
            return x
        return F.interpolate(x, size=(self.kernel, self.kernel), mode="bilinear", align_corners=True)


@register_family("vgg", lambda m: isinstance(m, VGG))
def decompose_vgg(model: nn.Module) -> BlockModel:
    """Split ``features`` before every Conv2d; the head is ConvMlp pre-logits (its input stretched by
    ``StretchToKernel``) plus the classifier."""
    assert isinstance(model, VGG)
    groups: list[list[nn.Module]] = []
    for layer in model.features:
        if isinstance(layer, nn.Conv2d) or not groups:
            groups.append([])
        groups[-1].append(layer)
    blocks: list[nn.Module] = [nn.Sequential(*group) for group in groups]
    classifier_head = model.head
    stretch = StretchToKernel(model.pre_logits.input_kernel_size)
    pool = nn.Sequential(stretch, model.pre_logits, classifier_head.global_pool, classifier_head.drop)
    head = TaskHead(pool=pool, classifier=nn.Sequential(classifier_head.fc, classifier_head.flatten))
    return BlockModel("vgg", nn.Identity(), blocks, head, Layout.NCHW)

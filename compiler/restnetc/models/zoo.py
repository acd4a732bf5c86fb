"""Small versions of the paper's model families, registered as timm architectures (``zoo_*``).

No pretrained VGG/ResNet/DeiT/Swin weights can be obtained here, so restnetc ships a model zoo trained on
Fashion-MNIST (``benchmarks/zoo/``). These are the architectures: the paper's families at 32 px, scaled
down so each trains on two CPU cores in minutes while keeping each pair's relative size (VGG19 about 2x
VGG11, DeiT-S about 4x DeiT-Ti, Swin-Ti larger than ResNet18). Being timm registrations, a project names
them like any timm model: ``{source: timm, arch: zoo_vgg11, checkpoint: ..., sha256: ...}``.
"""

from __future__ import annotations

from typing import Any

from timm.models import register_model
from timm.models.resnet import BasicBlock, ResNet
from timm.models.swin_transformer import SwinTransformer
from timm.models.vgg import VGG
from timm.models.vision_transformer import VisionTransformer

IMAGE_SIZE = 32

# CIFAR-style VGG at a quarter of the channels (64..512 -> 16..128); a slim pre-logits MLP so the
# convolutions carry the size difference between the two depths, as in the paper's pair.
_VGG11 = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"]
_VGG19 = [16, 16, "M", 32, 32, "M", 64, 64, 64, 64, "M", 128, 128, 128, 128, "M", 128, 128, 128, 128, "M"]
_VGG_MLP_RATIO = 1 / 256


_FACTORY_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")  # what timm.create_model adds


def _options(defaults: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The architecture's arguments: its defaults, overridden by the caller's (timm's own keys dropped)."""
    return {**defaults, **{key: value for key, value in kwargs.items() if key not in _FACTORY_ONLY}}


def _vgg(cfg: list[Any], pretrained: bool, kwargs: dict[str, Any]) -> VGG:
    _refuse_pretrained(pretrained)
    defaults = {"num_classes": 10, "mlp_ratio": _VGG_MLP_RATIO, "norm_layer": None}
    return VGG(cfg=cfg, **_options(defaults, kwargs))


def _refuse_pretrained(pretrained: bool) -> None:
    if pretrained:
        raise ValueError("zoo architectures have no hub weights: pass the zoo checkpoint instead")


@register_model
def zoo_vgg11(pretrained: bool = False, **kwargs: Any) -> VGG:
    """VGG11 (8 convolutions), 16-128 channels."""
    return _vgg(_VGG11, pretrained, kwargs)


@register_model
def zoo_vgg19(pretrained: bool = False, **kwargs: Any) -> VGG:
    """VGG19 (16 convolutions), 16-128 channels."""
    return _vgg(_VGG19, pretrained, kwargs)


def _resnet(layers: tuple[int, ...], pretrained: bool, kwargs: dict[str, Any]) -> ResNet:
    _refuse_pretrained(pretrained)
    defaults = {"layers": layers, "channels": (16, 32, 64, 128), "stem_width": 16, "num_classes": 10}
    return ResNet(block=BasicBlock, **_options(defaults, kwargs))  # type: ignore[arg-type]  # timm annotates an instance


@register_model
def zoo_resnet34(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet34 (3-4-6-3 basic blocks) at a quarter of the channels (16-128)."""
    return _resnet((3, 4, 6, 3), pretrained, kwargs)


@register_model
def zoo_resnet18(pretrained: bool = False, **kwargs: Any) -> ResNet:
    """ResNet18 (2-2-2-2 basic blocks) at a quarter of the channels: the paper's CNN front for Swin-Ti."""
    return _resnet((2, 2, 2, 2), pretrained, kwargs)


def _deit(embed_dim: int, heads: int, pretrained: bool, kwargs: dict[str, Any]) -> VisionTransformer:
    _refuse_pretrained(pretrained)
    defaults = {
        "img_size": IMAGE_SIZE,
        "patch_size": 4,
        "embed_dim": embed_dim,
        "depth": 6,
        "num_heads": heads,
        "num_classes": 10,
    }
    return VisionTransformer(**_options(defaults, kwargs))


@register_model
def zoo_deit_s(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """DeiT-S at a third of its width (128 dims, 4 heads of 32) and half its depth, 4 px patches."""
    return _deit(128, 4, pretrained, kwargs)


@register_model
def zoo_deit_ti(pretrained: bool = False, **kwargs: Any) -> VisionTransformer:
    """DeiT-Ti: half ``zoo_deit_s``'s width and heads (64 dims, 2 heads of 32), as DeiT-Ti is to DeiT-S."""
    return _deit(64, 2, pretrained, kwargs)


@register_model
def zoo_swin_ti(pretrained: bool = False, **kwargs: Any) -> SwinTransformer:
    """Swin-Ti's stage layout (2-2-6-2 blocks) on 2 px patches and 4 px windows, a quarter of its width."""
    _refuse_pretrained(pretrained)
    defaults = {
        "img_size": IMAGE_SIZE,
        "patch_size": 2,
        "window_size": 4,
        "embed_dim": 24,
        "depths": (2, 2, 6, 2),
        "num_heads": (1, 2, 4, 8),
        "num_classes": 10,
    }
    return SwinTransformer(**_options(defaults, kwargs))

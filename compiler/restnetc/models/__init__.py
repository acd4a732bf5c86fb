"""Model families as block adapters in a registry, and the factory that builds configured parents.

The model zoo (``zoo``) is not imported here: it registers its timm architectures when first used.
"""

from restnetc.models import efficientnet_lite, resnet, swin, vgg, vit
from restnetc.models.blocks import BlockInfo, BlockModel, Layout, TaskHead, count_params
from restnetc.models.registry import decompose, family_of, list_families, register_family

__all__ = [
    "BlockInfo",
    "BlockModel",
    "Layout",
    "TaskHead",
    "count_params",
    "decompose",
    "efficientnet_lite",
    "family_of",
    "list_families",
    "register_family",
    "resnet",
    "swin",
    "vgg",
    "vit",
]

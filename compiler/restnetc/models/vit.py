"""timm ViT / DeiT family: token sequences with class (and DeiT distillation) prefix tokens."""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.layers.pool1d import global_pool_nlc
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead
from restnetc.models.registry import register_family


class VitStem(nn.Module):
    """Patch embedding, prefix tokens and position embedding, as the source model computes them.

    The position-embedding step is the source class's own ``_pos_embed`` method, called on this module,
    which owns every attribute that method reads; so the arithmetic is timm's, not a re-implementation.
    """

    def __init__(self, model: VisionTransformer) -> None:
        super().__init__()
        self.patch_embed = model.patch_embed
        self.cls_token = model.cls_token
        self.reg_token = model.reg_token
        self.dist_token = getattr(model, "dist_token", None)
        self.pos_embed = model.pos_embed
        self.pos_drop = model.pos_drop
        self.patch_drop = model.patch_drop
        self.norm_pre = model.norm_pre
        self.dynamic_img_size = model.dynamic_img_size
        self.no_embed_class = model.no_embed_class
        self.num_prefix_tokens = model.num_prefix_tokens
        self._pos_embed_fn: Callable[..., torch.Tensor] = type(model)._pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pos_embed_fn(self, self.patch_embed(x))
        return self.norm_pre(self.patch_drop(x))  # type: ignore[no-any-return]


class VitPool(nn.Module):
    """Final norm and token pooling (class token or average of patch tokens)."""

    def __init__(self, model: VisionTransformer) -> None:
        super().__init__()
        self.norm = model.norm
        self.fc_norm = model.fc_norm
        self.head_drop = model.head_drop
        self.global_pool = model.global_pool
        self.num_prefix_tokens = model.num_prefix_tokens
        self.include_prefix = model.pool_include_prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = global_pool_nlc(
            self.norm(x), self.global_pool, self.num_prefix_tokens, reduce_include_prefix=self.include_prefix
        )
        return self.head_drop(self.fc_norm(x))  # type: ignore[no-any-return]


class DistilledHead(TaskHead):
    """DeiT's two heads on the class and distillation tokens, averaged (its inference behaviour).

    ``embed`` is the average of both normed tokens; after ``replace_classifier`` one classifier reads it.
    """

    def __init__(self, model: VisionTransformerDistilled) -> None:
        super().__init__(pool=model.norm, classifier=model.head)
        self.head_drop = model.head_drop
        self.head_dist: nn.Module | None = model.head_dist

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool(x)
        return self.head_drop(x[:, 0]), self.head_drop(x[:, 1])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        cls_token, dist_token = self._tokens(x)
        return (cls_token + dist_token) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_dist is None:
            return self.classifier(self.embed(x))  # type: ignore[no-any-return]
        cls_token, dist_token = self._tokens(x)
        return (self.classifier(cls_token) + self.head_dist(dist_token)) / 2  # type: ignore[no-any-return]

    def replace_classifier(self, classifier: nn.Linear) -> None:
        self.classifier = classifier
        self.head_dist = None


def _check_supported(model: VisionTransformer) -> None:
    if model.dynamic_img_size or model.attn_pool is not None:
        raise ValueError("ViT with dynamic_img_size or attention pooling is not supported")


@register_family("vit", lambda m: isinstance(m, VisionTransformer))
def decompose_vit(model: nn.Module) -> BlockModel:
    """Blocks are the transformer blocks; outputs are ``[N, prefix + H*W, D]``."""
    assert isinstance(model, VisionTransformer)
    _check_supported(model)
    head: TaskHead
    if isinstance(model, VisionTransformerDistilled):
        head = DistilledHead(model)
    else:
        head = TaskHead(pool=VitPool(model), classifier=model.head)
    blocks = list(model.blocks)
    return BlockModel("vit", VitStem(model), blocks, head, Layout.TOKENS, model.num_prefix_tokens)

"""A model decomposed into stem -> ordered stitchable blocks -> task head.

Contract: for every decomposed model ``m`` built from ``source``, ``m(x) == source(x)`` exactly (in eval mode),
because the stem, blocks and head are the source's own modules, called in the source's order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn


class Layout(StrEnum):
    """How a block output is laid out (batch dimension first in all cases)."""

    NCHW = "nchw"  # CNN feature map
    NHWC = "nhwc"  # Swin-style token grid
    TOKENS = "tokens"  # ViT token sequence [N, prefix + H*W, D]


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode, then restore each submodule's own mode (not one flag for all)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def count_params(module: nn.Module) -> int:
    """Number of distinct parameter elements in ``module`` (shared tensors count once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


class TaskHead(nn.Module):
    """Maps the last block output to logits: ``classifier(embed(x))``."""

    def __init__(self, pool: nn.Module, classifier: nn.Module) -> None:
        super().__init__()
        self.pool = pool
        self.classifier = classifier

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-logits features ``[N, D]``, the input of a linear probe."""
        return self.pool(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))  # type: ignore[no-any-return]

    def replace_classifier(self, classifier: nn.Linear) -> None:
        """Use ``classifier`` on the pre-logits features from now on."""
        self.classifier = classifier


@dataclass(frozen=True)
class BlockInfo:
    """What one block produces, for one image at a given input size."""

    index: int
    shape: tuple[int, ...]
    params: int


class BlockModel(nn.Module):
    """A classifier split into ``stem``, ``blocks`` and ``head``, all owned by this module.

    It is created in eval mode: decomposed parents are pretrained and used frozen.
    """

    def __init__(
        self,
        family: str,
        stem: nn.Module,
        blocks: list[nn.Module],
        head: TaskHead,
        layout: Layout,
        prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        self.family = family
        self.stem = stem
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.layout = layout
        self.prefix_tokens = prefix_tokens
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)  # type: ignore[no-any-return]

    def block_outputs(self, x: torch.Tensor, upto: int | None = None) -> Iterator[torch.Tensor]:
        """Yield the output of each block in order (through block ``upto`` inclusive if given)."""
        last = len(self.blocks) - 1 if upto is None else upto
        x = self.stem(x)
        for index, block in enumerate(self.blocks):
            if index > last:
                return
            x = block(x)
            yield x

    @torch.no_grad()
    def describe(self, input_size: int, channels: int = 3) -> list[BlockInfo]:
        """Output shape (without batch) and parameter count of every block at ``input_size``."""
        probe = torch.zeros(1, channels, input_size, input_size)
        with eval_mode(self):
            return [
                BlockInfo(index=i, shape=tuple(out.shape[1:]), params=count_params(self.blocks[i]))
                for i, out in enumerate(self.block_outputs(probe))
            ]

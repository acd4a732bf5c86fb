"""Stitching layers and stitched models: front of one parent, a trainable adapter, back of the other.

One adapter covers every pairing of layouts. The front output is brought to a canonical NCHW grid (plus any
prefix tokens), resampled to the back's grid, mapped per position by one affine channel map, and laid out
as the back expects. The map is a 1x1 convolution when the back is a CNN (CNN->CNN, Transformer->CNN) and a
linear layer on tokens when the back is a Transformer (ViT->ViT, CNN->ViT "conv + flatten to tokens",
CNN->Swin on an NHWC grid): the same arithmetic, in the form each backend lowers best.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from restnetc.models.blocks import BlockModel, Layout, TaskHead


@dataclass(frozen=True)
class Interface:
    """The per-sample shape and layout of one block output."""

    layout: Layout
    shape: tuple[int, ...]
    prefix_tokens: int = 0

    @property
    def channels(self) -> int:
        return self.shape[0] if self.layout is Layout.NCHW else self.shape[-1]

    @property
    def grid(self) -> tuple[int, int]:
        if self.layout is Layout.NCHW:
            return self.shape[1], self.shape[2]
        if self.layout is Layout.NHWC:
            return self.shape[0], self.shape[1]
        side = math.isqrt(self.shape[0] - self.prefix_tokens)
        if side * side != self.shape[0] - self.prefix_tokens:
            raise ValueError(f"token sequence {self.shape} is not a square grid plus {self.prefix_tokens} prefix")
        return side, side


def _to_grid(x: torch.Tensor, source: Interface) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Front output -> (NCHW grid, prefix tokens ``[N, P, C]`` or None)."""
    if source.layout is Layout.NCHW:
        return x, None
    if source.layout is Layout.NHWC:
        return x.permute(0, 3, 1, 2), None
    h, w = source.grid
    p = source.prefix_tokens
    patches = x[:, p:].reshape(x.shape[0], h, w, x.shape[-1]).permute(0, 3, 1, 2)
    return patches, (x[:, :p] if p else None)


def _resample(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(grid.shape[-2:]) == size:
        return grid
    if grid.shape[-2] >= size[0] and grid.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(grid, size)
    return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)


class StitchLayer(nn.Module):
    """Trainable adapter from ``source`` (front output) to ``target`` (what the back's next block takes)."""

    def __init__(self, source: Interface, target: Interface) -> None:
        super().__init__()
        self.source = source
        self.target = target
        self.proj: nn.Conv2d | nn.Linear
        if target.layout is Layout.NCHW:
            self.proj = nn.Conv2d(source.channels, target.channels, kernel_size=1)
        else:
            self.proj = nn.Linear(source.channels, target.channels)

    @property
    def kind(self) -> str:
        """``conv1x1``, ``linear`` or ``conv+tokens`` (CNN into a Transformer), as in the ReStNet paper."""
        if self.target.layout is Layout.NCHW:
            return "conv1x1"
        return "conv+tokens" if self.source.layout is Layout.NCHW else "linear"

    def _weight(self) -> torch.Tensor:
        return self.proj.weight.reshape(self.proj.weight.shape[0], -1)

    def source_grid(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Front output resampled to the target grid (NCHW) and its prefix tokens, before the channel map."""
        grid, prefix = _to_grid(x, self.source)
        return _resample(grid, self.target.grid), prefix

    def target_grid(self, y: torch.Tensor) -> torch.Tensor:
        """A target-layout tensor (e.g. the back parent's own block output) as an NCHW grid."""
        return _to_grid(y, self.target)[0]

    def set_affine(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the channel map to ``y = weight @ x + bias`` (``weight`` is ``[C_out, C_in]``)."""
        with torch.no_grad():
            self.proj.weight.copy_(weight.reshape(self.proj.weight.shape))
            assert self.proj.bias is not None
            self.proj.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid, prefix = self.source_grid(x)
        if isinstance(self.proj, nn.Conv2d):
            return self.proj(grid)  # type: ignore[no-any-return]
        tokens = self.proj(grid.flatten(2).transpose(1, 2))
        if self.target.layout is Layout.NHWC:
            h, w = self.target.grid
            return tokens.reshape(tokens.shape[0], h, w, tokens.shape[-1])  # type: ignore[no-any-return]
        return torch.cat([self._prefix(prefix, grid, tokens), tokens], dim=1)

    def _prefix(self, prefix: torch.Tensor | None, grid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Prefix tokens for the back: the front's, mapped; else the mean token (a CNN has no class token)."""
        wanted = self.target.prefix_tokens
        if prefix is None:
            mapped = tokens.mean(dim=1, keepdim=True)
        else:
            mapped = F.linear(prefix, self._weight(), self.proj.bias)
            if mapped.shape[1] == wanted:
                return mapped
            mapped = mapped[:, :1]  # the class token stands in for every prefix token the back expects
        return mapped.expand(-1, wanted, -1)


class StitchedModel(nn.Module):
    """``head_b(blocks_b[j+1:](stitch(blocks_a[:i+1](stem_a(x)))))``; ``stitch`` is trainable, the rest frozen
    unless ``unfreeze`` makes the front or back part trainable too.

    Frozen parts stay in eval mode even when the model is put in training mode, so batch-norm statistics
    and dropout of the pretrained parents never change.
    """

    FRONT = ("front_stem.", "front_blocks.")
    BACK = ("back_blocks.", "head.")

    def __init__(self, front: BlockModel, front_block: int, back: BlockModel, back_block: int) -> None:
        super().__init__()
        if not (0 <= front_block < len(front.blocks) and 0 <= back_block < len(back.blocks)):
            raise ValueError(f"stitch point ({front_block}, {back_block}) is outside the parents' blocks")
        self.front_block = front_block
        self.back_block = back_block
        self.front_stem = front.stem
        self.front_blocks = nn.ModuleList(list(front.blocks)[: front_block + 1])
        self.back_blocks = nn.ModuleList(list(back.blocks)[back_block + 1 :])
        self.head: TaskHead = back.head
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.stitch: StitchLayer | None = None
        self.front_trainable = self.back_trainable = False
        self.eval()

    def unfreeze(self, front: bool, back: bool) -> None:
        """Make the front and/or back part trainable: on private copies, so the parents never change."""
        if front and not self.front_trainable:
            self.front_stem = copy.deepcopy(self.front_stem).requires_grad_(True)
            self.front_blocks = copy.deepcopy(self.front_blocks).requires_grad_(True)
            self.front_trainable = True
        if back and not self.back_trainable:
            self.back_blocks = copy.deepcopy(self.back_blocks).requires_grad_(True)
            self.head = copy.deepcopy(self.head).requires_grad_(True)
            self.back_trainable = True
        self.train(self.training)

    def trainable_params(self) -> int:
        """Parameters that fine-tuning updates (the stitching layer's, plus any unfrozen part's)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def trained_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes of every part that training changes."""
        return ("stitch.", *(self.FRONT if self.front_trainable else ()), *(self.BACK if self.back_trainable else ()))

    def shared_with_back(self) -> dict[str, str]:
        """Module paths of this model that are the back parent's own modules, mapped to their paths in the
        parent (``back_blocks.k`` is the parent's ``blocks.<back_block + 1 + k>``); empty once the back part is
        trained (``unfreeze``), when they are copies that differ."""
        if self.back_trainable:
            return {}
        shared = {f"back_blocks.{k}": f"blocks.{self.back_block + 1 + k}" for k in range(len(self.back_blocks))}
        return {**shared, "head": "head"}

    def attach(self, stitch: StitchLayer) -> None:
        """Install the (trainable) stitching layer."""
        self.stitch = stitch

    def train(self, mode: bool = True) -> StitchedModel:
        super().train(False)
        trainable: list[nn.Module | None] = [self.stitch]
        if self.front_trainable:
            trainable += [self.front_stem, self.front_blocks]
        if self.back_trainable:
            trainable += [self.back_blocks, self.head]
        for part in trainable:
            if part is not None:
                part.train(mode)
        self.training = mode
        return self

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """The front part (cacheable while it is frozen: then it never changes during fine-tuning)."""
        x = self.front_stem(x)
        for block in self.front_blocks:
            x = block(x)
        return x

    def back(self, features: torch.Tensor) -> torch.Tensor:
        """Stitching layer, then the back part and head."""
        assert self.stitch is not None, "attach a stitching layer first"
        x = self.stitch(features)
        for block in self.back_blocks:
            x = block(x)
        return self.head(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.back(self.front(x))


def interfaces(model: BlockModel, input_size: int) -> list[Interface]:
    """The output interface of every block of ``model`` at ``input_size``."""
    return [Interface(model.layout, info.shape, model.prefix_tokens) for info in model.describe(input_size)]


def build_stitched(
    front: BlockModel, front_block: int, back: BlockModel, back_block: int, input_size: int
) -> StitchedModel:
    """A stitched model with a freshly initialised stitching layer at the given stitch point."""
    model = StitchedModel(front, front_block, back, back_block)
    source = interfaces(front, input_size)[front_block]
    target = interfaces(back, input_size)[back_block]
    model.attach(StitchLayer(source, target))
    return model

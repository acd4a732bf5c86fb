"""Labelled image sets as normalised tensors, and the resizing every source shares."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from restnetc.config.project import Normalization
from restnetc.distributed import Ranks


@dataclass(frozen=True)
class ImageSet:
    """``images`` is ``[N, 3, S, S]`` float32, normalised; ``labels`` is ``[N]`` int64 class indices;
    ``indices`` is ``[N]`` int64: each image's position in its data source's split (what identifies it)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    indices: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, count: int) -> ImageSet:
        """The first ``count`` images (the whole set if it is smaller)."""
        return ImageSet(self.images[:count], self.labels[:count], self.classes, self.indices[:count])

    def share(self, ranks: Ranks) -> ImageSet:
        """The images of ``ranks``' share (``Ranks.part``), in order."""
        part = ranks.part
        return ImageSet(self.images[part], self.labels[part], self.classes, self.indices[part])

    def batches(self, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive ``(images, labels)`` minibatches of at most ``size``."""
        return [(self.images[i : i + size], self.labels[i : i + size]) for i in range(0, len(self), size)]

    @property
    def indices_sha256(self) -> str:
        """sha256 of ``indices`` as little-endian int64, in order: which images, not what they hold."""
        return hashlib.sha256(self.indices.to(torch.int64).numpy().astype("<i8").tobytes()).hexdigest()


def to_model_input(pixels: torch.Tensor, size: int, normalization: Normalization) -> torch.Tensor:
    """``[N, C, H, W]`` pixels in [0, 1] (C = 1 or 3) -> ``[N, 3, size, size]`` normalised float32, resized as
    ``normalization.resize`` says (antialiased, as the shim's image tool does it)."""
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(
            pixels, size=(size, size), mode=normalization.resize, antialias=True, align_corners=False
        )
    mean = torch.tensor(normalization.mean).view(1, 3, 1, 1)
    std = torch.tensor(normalization.std).view(1, 3, 1, 1)
    return ((pixels - mean) / std).contiguous()


def pick(count: int, available: int, seed: int) -> torch.Tensor:
    """A fixed random choice of ``min(count, available)`` indices, reproducible from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(available, generator=generator)[: min(count, available)]

"""Data sources by the ``data.source.kind`` a project file names, in a registry that rejects duplicates.

A source reads a dataset laid out in ``train`` and ``test`` splits under a root: how many images a split
holds (cheaply), the full check that it is readable and what classes it holds (``data.check``), and the
chosen images as model input. ``tests/test_registries.py`` checks the registry holds exactly the kinds the
project schema accepts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from restnetc.config.project import Normalization
from restnetc.data.images import ImageSet
from restnetc.registry import Registry

SourceSplit = Literal["train", "test"]
"""A split as the source stores it (train and validation are both drawn from ``train``)."""


@dataclass(frozen=True)
class SplitSummary:
    """What a source split holds: where it is (folder or image file), its classes and its number of images."""

    where: Path
    classes: tuple[str, ...]
    images: int


@dataclass(frozen=True)
class SourceReader:
    """How to read one kind of source; each function raises DataError naming the file or folder at fault."""

    size: Callable[[Path, SourceSplit], int]
    """Images in a split, without reading them all."""
    check: Callable[[Path, SourceSplit], SplitSummary]
    """Every image of a split readable, with its classes (slow: reads everything)."""
    load: Callable[[Path, SourceSplit, torch.Tensor, int, Normalization], ImageSet]
    """The images at the given indices of a split, resized to the input size and normalised."""


_SOURCES = Registry[SourceReader]("data source")
register_data_source, get_data_source, list_data_sources = _SOURCES.register, _SOURCES.get, _SOURCES.names

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


_SOURCES: dict[str, SourceReader] = {}


def register_data_source(kind: str, reader: SourceReader) -> None:
    """Register ``reader`` for projects whose ``data.source.kind`` is ``kind``; a kind is registered once."""
    if kind in _SOURCES:
        raise ValueError(f"data source {kind!r} is already registered")
    _SOURCES[kind] = reader


def get_data_source(kind: str) -> SourceReader:
    """The reader registered for ``kind``; ValueError naming the registered kinds otherwise."""
    if kind not in _SOURCES:
        raise ValueError(f"unknown data source {kind!r}; registered: {', '.join(_SOURCES)}")
    return _SOURCES[kind]


def list_data_sources() -> tuple[str, ...]:
    """Registered kinds, in registration order."""
    return tuple(_SOURCES)

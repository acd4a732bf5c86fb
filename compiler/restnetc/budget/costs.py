"""Exact static costs: parameter counts and multiply-accumulates (torch's FlopCounterMode, 1 MAC = 2 FLOPs).

A stitched model is a chain (front stem, front blocks, stitching layer, back blocks, back head), and every
link sees the same input shape it sees inside its parent, so the cost of any stitch point is the sum of
per-part costs measured once per parent. ``measure`` runs the counter on a whole model to check that sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from restnetc.config.target import Metric
from restnetc.models.blocks import BlockModel, count_params, eval_mode


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-accumulates for one image."""

    params: int
    macs: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def counted(self, metric: Metric) -> int | None:
        """The figure a budget of ``metric`` holds this cost to when the metric is counted (params, MACs, FLOPs):
        the one rule selection and the bundle's budget checks share; None for a measured metric."""
        return {Metric.PARAMS: self.params, Metric.MACS: self.macs, Metric.FLOPS: self.flops}.get(metric)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


ZERO = Cost(0, 0)


def _macs(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        y = module(x)
    return counter.get_total_flops() // 2, y


def measure(module: nn.Module, example: torch.Tensor) -> Cost:
    """Exact cost of ``module`` on ``example`` (a batch of one)."""
    with eval_mode(module):
        macs, _ = _macs(module, example)
    return Cost(count_params(module), macs)


@dataclass(frozen=True)
class PartCosts:
    """Cost of each part of a decomposed parent at one input size."""

    stem: Cost
    blocks: tuple[Cost, ...]
    head: Cost

    def front(self, last_block: int) -> Cost:
        """Stem plus blocks ``0..last_block``."""
        return sum(self.blocks[: last_block + 1], self.stem)

    def back(self, last_skipped_block: int) -> Cost:
        """Blocks after ``last_skipped_block`` plus the head."""
        return sum(self.blocks[last_skipped_block + 1 :], self.head)

    @property
    def total(self) -> Cost:
        return self.front(len(self.blocks) - 1) + self.head


def part_costs(model: BlockModel, input_size: int, channels: int = 3) -> PartCosts:
    """Measure stem, every block and the head of ``model`` once, at ``input_size``."""
    x = torch.zeros(1, channels, input_size, input_size)
    blocks = []
    with eval_mode(model):
        stem_macs, x = _macs(model.stem, x)
        for block in model.blocks:
            macs, x = _macs(block, x)
            blocks.append(Cost(count_params(block), macs))
        head_macs, _ = _macs(model.head, x)
    return PartCosts(
        Cost(count_params(model.stem), stem_macs),
        tuple(blocks),
        Cost(count_params(model.head), head_macs),
    )

"""Which parts of a model to keep in float when int8 loses too much, chosen by simulation.

Int8 is simulated in eager PyTorch with the backend's own PT2E quantizer (seconds per choice, against tens
of seconds for a lowering). Candidates are the first units of the model (stem, first blocks), grown one
at a time up to a cap, then the last unit (the head) on top of the best prefix. Two reasons for
ends rather than any unit: the first and last layers are where int8 hurts most (EfficientNet-Lite0 on
Fashion-MNIST: stem +2.1, block 0 +2.4, block 1 +0.9 points when kept float alone, every other block
+0.6 at most), and a float unit in the middle of a CNN puts a dequantize in front of a float convolution,
which ExecuTorch's XNNPACK lowering takes for a quantized one and refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from restnetc.models.blocks import count_params

SCREENING_IMAGES = 500
"""Validation images (the split's first) on which float units are screened in simulation: figures on them are
compared with each other only, never with the whole validation split's."""
MAX_FLOAT_UNITS = 4
"""At most this many units stay in float."""
MAX_FLOAT_PARAM_SHARE = 0.05
"""Float weights take 4 bytes instead of 1: this share of the parameters adds at most 0.15 bytes/param."""

Simulate = Callable[[tuple[str, ...]], float]
"""Simulated int8 top-1 (%) with the given units kept in float."""


def quantization_units(model: nn.Module, example: torch.Tensor) -> tuple[str, ...]:
    """The model's top-level parts in the order ``forward`` runs them, module lists expanded.

    For a ``BlockModel``: ``('stem', 'blocks.0', ..., 'head')``.
    """
    names = [
        f"{name}.{index}" if isinstance(child, nn.ModuleList) else name
        for name, child in model.named_children()
        for index, _ in (child.named_children() if isinstance(child, nn.ModuleList) else [("", None)])
    ]
    order: list[str] = []
    hooks = [
        model.get_submodule(name).register_forward_pre_hook(lambda *_, name=name: order.append(name)) for name in names
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return tuple(dict.fromkeys(order))


@dataclass(frozen=True)
class Screening:
    """The float units chosen and their simulated top-1, with every candidate tried."""

    float_units: tuple[str, ...]
    simulated: float
    baseline: float
    tried: dict[tuple[str, ...], float]


def screen(model: nn.Module, example: torch.Tensor, simulate: Simulate, needed_gain: float) -> Screening:
    """Grow a float prefix up to the caps, then try the head on top; stop early once a candidate's simulated
    top-1 is ``needed_gain`` points above plain int8's.

    Simulation is trusted for differences only (it runs on fewer images and calibrates on fewer than the
    artifact): the gain needed is what the runtime measured beyond the tolerance. Returns the candidate with
    the highest simulated top-1 (the empty set if nothing beats plain int8).
    """
    units = quantization_units(model, example)
    cap = MAX_FLOAT_PARAM_SHARE * count_params(model)
    tried: dict[tuple[str, ...], float] = {(): simulate(())}
    goal = tried[()] + needed_gain

    def fits(candidate: tuple[str, ...]) -> bool:
        return len(candidate) <= MAX_FLOAT_UNITS and _params(model, candidate) <= cap

    best: tuple[str, ...] = ()
    for k in range(1, len(units)):
        prefix = units[:k]
        if not fits(prefix) or tried[best] >= goal:
            break
        tried[prefix] = simulate(prefix)  # no early stop: a stem alone may not help where stem + block 0 does
        if tried[prefix] > tried[best]:
            best = prefix
    with_head = (*best, units[-1])
    if tried[best] < goal and fits(with_head):
        tried[with_head] = simulate(with_head)
        if tried[with_head] > tried[best]:
            best = with_head
    return Screening(best, tried[best], tried[()], tried)


def _params(model: nn.Module, units: tuple[str, ...]) -> int:
    return sum(count_params(model.get_submodule(unit)) for unit in units)

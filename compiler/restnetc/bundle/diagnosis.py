"""Where int8 loses: each quantization unit of a rung kept in float alone, simulated with a backend's quantizer.

The simulation is the one screening trusts (as ``lowering.Graphs`` makes it: the backend's own PT2E quantizer,
one calibration whose observers every choice of float units copies, eager PyTorch), run on validation images.
For the all-int8 graph and for each unit kept in float alone it reports validation top-1 and the
signal-to-quantization-noise ratio of the logits against the eager fp32 model's: a unit whose float copy
recovers the most SQNR is where the error enters (its own activations' ranges, or what it feeds the next
unit). The test split is never touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from restnetc.backends import Backend
from restnetc.backends.pt2e import Donor, export_batched, observe
from restnetc.bundle.screening import quantization_units
from restnetc.models.blocks import count_params
from restnetc.native_output import captured

BATCH = 64


@dataclass(frozen=True)
class Simulated:
    """One int8 graph's figures on the validation images: ``float_units`` kept in float, the rest int8."""

    float_units: tuple[str, ...]
    params: int
    """Parameters of the float units (0 for the all-int8 graph)."""
    top1: float
    """Validation top-1 %."""
    sqnr_db: float
    """10 log10(sum of fp32 logits squared / sum of squared differences from them); inf when equal."""


@dataclass(frozen=True)
class Diagnosis:
    """A rung's int8 sensitivity under one backend's quantizer."""

    backend: str
    images: int
    eager_top1: float
    all_int8: Simulated
    units: tuple[Simulated, ...]
    """Each unit kept in float alone, in the order the model runs them."""

    def ranked(self) -> list[Simulated]:
        """The units, the one whose float copy recovers the most SQNR first."""
        return sorted(self.units, key=lambda s: -s.sqnr_db)


def _sqnr_db(reference: torch.Tensor, approximation: torch.Tensor) -> float:
    noise = float(((reference - approximation) ** 2).sum())
    return math.inf if noise == 0 else 10 * math.log10(float((reference**2).sum()) / noise)


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return round(float((logits.argmax(1) == labels).double().mean() * 100), 3)


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():  # a converted PT2E graph refuses .eval(); it has no train-time behaviour anyway
        return torch.cat([model(chunk) for chunk in images.split(BATCH)])


def diagnose(
    model: nn.Module,
    backend: Backend,
    calibration: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    donor: Donor | None = None,
) -> Diagnosis:
    """Simulate ``model`` in int8 with ``backend``'s quantizer (calibrated on ``calibration``, ``donor`` as for
    ``pt2e.observe``) on the validation ``images``/``labels``: all int8, then each unit of
    ``quantization_units`` kept in float alone."""
    with captured():
        exported = export_batched(model, calibration)
        observed = observe(exported, backend.int8_quantizer(), calibration, donor)
    reference = _logits(model, images)

    def simulate(units: tuple[str, ...]) -> Simulated:
        with captured():  # one graph at a time, from the one calibration (``Graphs`` keeps every graph it makes)
            graph, _ = backend.quantize(exported, calibration, units, observed)
        logits = _logits(graph, images)
        params = sum(count_params(model.get_submodule(unit)) for unit in units)
        return Simulated(units, params, _top1(logits, labels), round(_sqnr_db(reference, logits), 3))

    units = quantization_units(model, calibration[:1])
    return Diagnosis(
        backend.name,
        len(images),
        _top1(reference, labels),
        simulate(()),
        tuple(simulate((unit,)) for unit in units),
    )

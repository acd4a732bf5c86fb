"""Where to stitch: rank stitch points by CKA and pick one per budget rung (ReStNet, Algorithm 1).

For one budget, ReStNet takes the most similar pair (i, j) whose stitched model fits. A target lists a
ladder of budgets of one or more metrics. Similarity alone favours early, cheap stitch points that fit
every rung, so a ladder of plain ceilings would collapse onto one variant. Instead each rung owns a band:
the budgets of one metric, sorted, split the axis into ``(previous limit, limit]``, and each rung takes the
most similar pair whose cost lies in its band. The lowest rung's band starts at zero, which is exactly the
paper's rule; the ladder's variants are distinct and spread over the range the budgets ask for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from restnetc.budget.costs import Cost
from restnetc.config.target import Budget, Metric
from restnetc.config.units import format_count
from restnetc.errors import BudgetError


@dataclass(frozen=True)
class Candidate:
    """A stitch point: the front's last block ``front_block``, the back resumes after ``back_block``."""

    front_block: int
    back_block: int
    cka: float
    cost: Cost


@dataclass(frozen=True)
class Choice:
    """The candidate chosen for one budget."""

    budget: Budget
    candidate: Candidate


Figure = Callable[["Candidate", Metric], float]
"""The figure of a candidate that a budget of a metric limits."""


def static_figure(candidate: Candidate, metric: Metric) -> float:
    """Parameters, MACs or FLOPs of ``candidate``; measured metrics need a cost table (``Figure`` from one)."""
    figure = candidate.cost.counted(metric)
    if figure is None:
        raise BudgetError(f"{metric.value} budgets need the target's cost table")
    return figure


def rank_candidates(cka: np.ndarray, cost_of: Callable[[int, int], Cost]) -> list[Candidate]:
    """Every stitch point, most similar first (ties broken by smaller cost, then position)."""
    candidates = [
        Candidate(i, j, float(cka[i, j]), cost_of(i, j)) for i in range(cka.shape[0]) for j in range(cka.shape[1])
    ]
    return sorted(candidates, key=lambda c: (-c.cka, c.cost.params, c.front_block, c.back_block))


def _describe(metric: Metric, value: float) -> str:
    if metric is Metric.LATENCY_MS:
        return f"{value:.4g} ms"
    if metric is Metric.MEMORY_MB:
        return f"{value / 1e6:.4g} MB"
    return format_count(value)


@dataclass(frozen=True)
class Band:
    """One budget's rung: every candidate whose figure lies in its band, in the order given (most similar first)."""

    budget: Budget
    candidates: tuple[Candidate, ...]


def bands(candidates: Sequence[Candidate], budgets: Sequence[Budget], figure: Figure = static_figure) -> list[Band]:
    """Each budget's band, in the order the budgets are given; BudgetError if a band holds no candidate."""
    found: dict[Budget, tuple[Candidate, ...]] = {}
    for metric in dict.fromkeys(b.metric for b in budgets):
        values = [figure(c, metric) for c in candidates]
        floor = 0.0
        for budget in sorted((b for b in budgets if b.metric is metric), key=lambda b: b.limit):
            fitting = tuple(c for c, v in zip(candidates, values, strict=True) if floor < v <= budget.limit)
            if not fitting:
                smallest, largest = min(values), max(values)
                span = f"stitched variants cost between {_describe(metric, smallest)} and {_describe(metric, largest)}"
                if budget.limit < smallest or floor == 0.0:
                    raise BudgetError(f"budget {budget.describe()} is infeasible: {span} {metric.value}")
                raise BudgetError(
                    f"budget {budget.describe()}: no variant costs between the rung below it "
                    f"({_describe(metric, floor)}) and this limit; widen the gap ({span} {metric.value})"
                )
            found[budget] = fitting
            floor = budget.limit
    return [Band(b, found[b]) for b in budgets]


def select(candidates: Sequence[Candidate], budgets: Sequence[Budget], figure: Figure = static_figure) -> list[Choice]:
    """The paper's rule: the most similar candidate of each band, in the order the budgets are given."""
    return [Choice(band.budget, band.candidates[0]) for band in bands(candidates, budgets, figure)]

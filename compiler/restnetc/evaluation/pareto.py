"""Which rungs are worth shipping: Pareto dominance on costs and accuracy, with a paired significance test.

A rung is dominated when another costs no more on every budgeted metric *and* is more accurate with
confidence on the same images. A difference of a few images is not enough: without the test, noise alone
would drop rungs that are as good as their rival. A rung's cheaper rivals are one family of tests (Holm), so a
rung with many cheaper rivals is not dropped because one of them was lucky.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from restnetc.config.units import format_count
from restnetc.evaluation.intervals import PairedComparison, more_accurate_than


@dataclass(frozen=True, eq=False)
class Contender:
    """One rung: its id, its budgeted costs (e.g. ``{"params": ..., "macs": ...}``; lower is better) and its
    per-image top-1 correctness (bool, on the images every contender is judged on, in the same order).

    Compared by identity (``eq=False``): ``correct`` is an array, for which ``==`` is element-wise.
    """

    id: str
    costs: Mapping[str, float]
    correct: np.ndarray

    @property
    def accuracy(self) -> float:
        """Top-1 accuracy, percent."""
        return 100.0 * float(np.count_nonzero(self.correct)) / len(self.correct)


@dataclass(frozen=True)
class Standing:
    """A contender's verdict.

    ``front``: not dominated. For a dominated contender, ``dominated_by`` names the dominator, ``reason`` says
    why in one sentence, and ``comparison`` is the paired comparison *dominator against it* (``difference > 0``).
    All three are None on the front.
    """

    front: bool
    dominated_by: str | None = None
    reason: str | None = None
    comparison: PairedComparison | None = None


def format_cost(metric: str, value: float) -> str:
    """A cost as a person reads it: ``latency_ms`` in ms, ``memory_bytes`` / ``memory_mb`` (bytes, the project's
    convention for memory figures and budgets) in MB, anything else as a count (``3.38M``)."""
    if metric == "latency_ms":
        return f"{value:.3g}ms"
    if metric in ("memory_bytes", "memory_mb"):
        return f"{value / 1e6:.3g}MB"
    return format_count(value)


_LABELS = {"latency_ms": "latency", "memory_bytes": "memory", "memory_mb": "memory"}


def _no_more(winner: float, loser: float, slack: float) -> bool:
    """``winner`` costs no more than ``loser``, counting a figure within ``slack`` of it as equal."""
    return winner <= loser * (1.0 + slack)


def _cost_clause(metric: str, winner: float, loser: float, slack: float) -> str:
    label, won, lost = _LABELS.get(metric, metric), format_cost(metric, winner), format_cost(metric, loser)
    if winner <= loser:
        return f"{label} {won} <= {lost}"
    return f"{label} {won} ~ {lost} (within the {slack * 100:g}% slack)"


def _reason(
    winner: Contender, loser: Contender, comparison: PairedComparison, rivals: int, slack: Mapping[str, float]
) -> str:
    costs = ", ".join(_cost_clause(m, winner.costs[m], loser.costs[m], slack.get(m, 0.0)) for m in loser.costs)
    noise = " within measurement noise" if any(winner.costs[m] > loser.costs[m] for m in loser.costs) else ""
    family = f", Holm over its {rivals} rivals that cost no more" if rivals > 1 else ""
    return (
        f"{winner.id} costs no more{noise} ({costs}) and is more accurate: {winner.accuracy:.2f}% vs "
        f"{loser.accuracy:.2f}%"
        f" (paired McNemar p={comparison.p_value:.2g}{family})"
    )


def _check(contenders: Sequence[Contender], confidence: float, slack: Mapping[str, float]) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    bad_slack = {m: v for m, v in slack.items() if not (math.isfinite(v) and 0 <= v < 1)}
    if bad_slack:
        raise ValueError(f"slack must be in [0, 1) for each metric, got {bad_slack}")
    ids = [c.id for c in contenders]
    if len(set(ids)) != len(ids):
        raise ValueError(f"contender ids must be distinct, got {ids}")
    if not contenders:
        return
    first = contenders[0]
    if not first.costs:
        raise ValueError(f"{first.id}: no cost metric to compare on")
    if not set(slack) <= set(first.costs):
        raise ValueError(f"slack names metrics {sorted(set(slack) - set(first.costs))} no contender has")
    for c in contenders:
        if set(c.costs) != set(first.costs):
            raise ValueError(
                f"every contender needs the same cost metrics: {c.id} has {sorted(c.costs)}, "
                f"{first.id} has {sorted(first.costs)}"
            )
        bad = [m for m, v in c.costs.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"{c.id}: non-finite cost for {', '.join(bad)}")
        correct = np.asarray(c.correct)
        if correct.dtype != np.bool_ or correct.ndim != 1 or correct.shape != np.asarray(first.correct).shape:
            raise ValueError(
                f"{c.id}: correctness must be a one-dimensional bool array over the same images as {first.id}"
                f" (got {correct.dtype} {correct.shape}, expected bool {np.asarray(first.correct).shape})"
            )
        if correct.size == 0:
            raise ValueError(f"{c.id}: no image to judge on")


def judge(
    contenders: Sequence[Contender], confidence: float = 0.95, slack: Mapping[str, float] | None = None
) -> dict[str, Standing]:
    """The standing of every contender, by id (in the order given).

    X is dominated when another contender Y costs no more than X on every metric and is more accurate with
    confidence: Y is right on more images than X, and the exact two-sided McNemar test on the paired
    correctness passes at ``1 - confidence`` with X's rivals that cost no more as one family of tests
    (``more_accurate_than``, Holm's step-down). Among several dominators the most accurate is named (ties: the
    cheapest on X's first metric, then the smallest id). The front is everything not dominated; it is never
    empty, since the most accurate contender cannot be dominated. ``slack`` (by metric, a share) is for measured
    costs: Y's figure within ``slack`` above X's counts as no more, since timings and memory peaks of equal
    programs differ from run to run by about that much; counted metrics (params, MACs) take none.

    ValueError unless ids are distinct, every contender has the same non-empty set of metric keys with finite
    values, every ``correct`` is a non-empty one-dimensional bool array of one common length,
    ``0 < confidence < 1``, and each slack is in [0, 1) for a metric the contenders have.
    """
    slack = dict(slack or {})
    _check(contenders, confidence, slack)
    standings: dict[str, Standing] = {}
    for loser in contenders:
        metrics = list(loser.costs)
        rivals = [
            rival
            for rival in contenders
            if rival is not loser and all(_no_more(rival.costs[m], loser.costs[m], slack.get(m, 0.0)) for m in metrics)
        ]
        wins = more_accurate_than(loser.correct, [rival.correct for rival in rivals], confidence)
        dominators = [(rival, win) for rival, win in zip(rivals, wins, strict=True) if win is not None]
        if not dominators:
            standings[loser.id] = Standing(front=True)
            continue
        winner, comparison = min(
            dominators,
            key=lambda d: (-int(np.count_nonzero(d[0].correct)), d[0].costs[metrics[0]], d[0].id),
        )
        standings[loser.id] = Standing(
            front=False,
            dominated_by=winner.id,
            reason=_reason(winner, loser, comparison, len(rivals), slack),
            comparison=comparison,
        )
    return standings

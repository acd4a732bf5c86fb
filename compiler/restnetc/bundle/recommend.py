"""What to ship: for each backend and each budget of the target, the shipped artifact to use.

The rule, stated once: among the backend's shipped artifacts (parents included) whose figure on the budget's
metric is within the limit, start from the cheapest on that metric and climb to a costlier one only while it is
more accurate with the ladder's confidence on validation (the split every decision is made on; the paired test
``evaluation.more_accurate_than``, each climb's contenders one family); among several that are, take the
cheapest. A lead within the noise buys nothing: picking the best point figure of many rungs on a thousand images
favours whichever rung was luckiest there (a winner's curse), and the cheaper rung is then at least as good as
far as anyone can tell. A budget holds each artifact to the figure ``budget_figure`` gives for the target's cost
source, as the manifest's ``budget_check`` does; with no limit, the cost is the parameter count. Reads only the
manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pydantic import ValidationError

from restnetc.bundle.budget_check import budget_figure
from restnetc.bundle.manifest import Artifact, BundleError, Manifest
from restnetc.config.target import Budget, CostSource, LadderPolicy, Metric
from restnetc.config.units import format_count
from restnetc.evaluation.intervals import PairedComparison, compare_paired, more_accurate_than


def figure(metric: Metric, artifact: Artifact, source: CostSource) -> float | None:
    """``artifact``'s figure for ``metric`` as a budget holds it (``budget_figure``), by cost ``source``."""
    return budget_figure(metric, artifact.params, artifact.macs, artifact.latency_ms, artifact.memory_bytes, source)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The artifact to ship for one backend under one budget (None: no limit); ``artifact`` is None when no
    shipped artifact of the backend fits. ``source``: the target's cost source the budget is held to.
    ``passed_over``: the fitting artifact most accurate on validation when that is not ``artifact``, with its
    paired comparison against ``artifact`` (its lead was within the noise); None otherwise."""

    backend: str
    budget: Budget | None
    source: CostSource
    artifact: Artifact | None
    passed_over: tuple[Artifact, PairedComparison] | None = None

    def sentence(self) -> str:
        """The recommendation in words, with the figures that justify it."""
        limit = "no limit" if self.budget is None else self.budget.describe()
        if self.artifact is None:
            return f"{self.backend}, {limit}: no shipped artifact fits; loosen the budget or build smaller rungs"
        a = self.artifact
        low, high = a.accuracy.interval
        held = ""
        if self.budget is not None and self.budget.metric.measured:
            value = figure(self.budget.metric, a, self.source)
            shown = f"{value:.3g} ms" if self.budget.metric is Metric.LATENCY_MS else f"{(value or 0) / 1e6:.3g} MB"
            held = f"; {shown} {self.source.value} against the budget"
        host = a.latency_ms.host.median, a.memory_bytes.host.peak_delta / 1e6
        said = (
            f"{self.backend}, {limit}: ship {a.id} ({a.file}): {a.accuracy.artifact:.2f}% top-1 on test "
            f"[{low:.1f}, {high:.1f}], validation {a.accuracy.validation:.2f}%; {format_count(a.params)} params, "
            f"{format_count(a.macs)} MACs; {host[0]:.3g} ms and {host[1]:.3g} MB on the build host{held}"
        )
        if self.passed_over is None:
            return said
        rival, comparison = self.passed_over
        rival_low, rival_high = comparison.interval
        return (
            f"{said}. Costlier {rival.id} leads it on validation by {comparison.difference:.2f} points "
            f"[{rival_low:.2f}, {rival_high:.2f}] (p = {comparison.p_value:.2g}), within the noise"
        )


def cheapest_first(cost: float, artifact: Artifact) -> tuple[float, int, int, float]:
    """The rule's order, cheapest first: by ``cost`` on the budget's metric, then fewer params, then fewer MACs
    (a tie on a measured figure, such as the memory one ladder program's entry points share, goes to what the
    artifact computes), then the more accurate on validation."""
    return cost, artifact.params, artifact.macs, -artifact.accuracy.validation


def climb(fitting: Sequence[Artifact], confidence: float) -> Artifact | None:
    """The module's rule on ``fitting`` (artifacts within a budget, cheapest first): the cheapest, then, while
    costlier ones are more accurate on validation with ``confidence`` (one Holm family per step), the cheapest
    of those. None when ``fitting`` is empty."""
    if not fitting:
        return None
    at = 0
    while costlier := fitting[at + 1 :]:
        rivals = [a.accuracy.validation_flags for a in costlier]
        wins = more_accurate_than(fitting[at].accuracy.validation_flags, rivals, confidence)
        ahead = [k for k, win in enumerate(wins) if win is not None]
        if not ahead:
            break
        at += 1 + ahead[0]
    return fitting[at]


def _choose(
    artifacts: list[Artifact], budget: Budget | None, source: CostSource, confidence: float
) -> tuple[Artifact | None, tuple[Artifact, PairedComparison] | None]:
    """``climb`` within ``budget``: the artifact to ship, and the most accurate fitting one passed over (or None)."""
    metric = Metric.PARAMS if budget is None else budget.metric
    costs = {id(a): figure(metric, a, source) for a in artifacts}
    fitting = sorted(
        (a for a in artifacts if (c := costs[id(a)]) is not None and (budget is None or c <= budget.limit)),
        key=lambda a: cheapest_first(costs[id(a)] or 0.0, a),
    )
    chosen = climb(fitting, confidence)
    if chosen is None:
        return None, None
    leader = max(fitting, key=lambda a: a.accuracy.validation)
    if leader.accuracy.validation <= chosen.accuracy.validation:
        return chosen, None
    return chosen, (leader, compare_paired(leader.accuracy.validation_flags, chosen.accuracy.validation_flags))


def _target_fields(manifest: Manifest) -> tuple[list[Budget], CostSource, list[str], float]:
    """The target's budgets (ascending), cost source, backends and ladder confidence, from the manifest's copy."""
    target = manifest.target
    try:
        listed = target.get("budgets")
        budgets = [Budget.model_validate(b) for b in (listed if isinstance(listed, list) else [])]
        costs, runtime = target.get("costs"), target.get("runtime")
        source = CostSource(costs.get("source", CostSource.PREDICTED) if isinstance(costs, dict) else "predicted")
        named = runtime.get("backends", []) if isinstance(runtime, dict) else []
        confidence = ladder_confidence(manifest)
    except (ValidationError, ValueError) as exc:
        raise BundleError(f"manifest.json: target: not a valid target ({str(exc).splitlines()[0]})") from None
    backends = list(dict.fromkeys([*map(str, named), *(a.backend for a in manifest.artifacts)]))
    return sorted(budgets, key=lambda b: (b.metric, b.limit)), source, backends, confidence


def ladder_confidence(manifest: Manifest) -> float:
    """The target's ``ladder.confidence``, from the manifest's copy of the target (ValidationError if invalid)."""
    ladder = manifest.target.get("ladder")
    return LadderPolicy.model_validate(ladder if isinstance(ladder, dict) else {}).confidence


def recommend(manifest: Manifest) -> list[Recommendation]:
    """One recommendation per backend of the target and per budget (ascending), then with no limit."""
    budgets, source, backends, confidence = _target_fields(manifest)
    by_backend = {backend: [a for a in manifest.artifacts if a.backend == backend] for backend in backends}
    return [
        Recommendation(backend, budget, source, *_choose(by_backend[backend], budget, source, confidence))
        for backend in backends
        for budget in [*budgets, None]
    ]

"""What to ship: for each backend and each budget of the target, the shipped artifact to use.

The rule, stated once (``ship_path``): walk the backend's shipped artifacts (parents included) cheapest first on
the budget's metric (no limit: params); measured figures (latency, memory) within ``ladder.measured_slack`` above
a step's cheapest count as one step, ordered inside by params then MACs (``cheapest_first``). Start from the first
artifact; move to a later one only when it is more accurate on validation, the split every decision is made on,
with the ladder's confidence (paired exact McNemar, ``evaluation.more_accurate_than``, every later artifact within
the limit one Holm family), and then to the first such. As the limit grows, the walk goes on from where it stood.
A lead within the noise buys nothing: picking the best point figure of many rungs on a thousand images favours
whichever was luckiest there (a winner's curse), and the cheaper artifact is then as good as anyone can tell. A
budget holds each artifact to the figure ``budget_figure`` gives for the target's cost source, as the
manifest's ``budget_check`` does. Reads only the manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

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
    ``passed_over``: the most accurate on validation of the fitting artifacts after ``artifact`` in the rule's
    walk, when more accurate than it, with its paired comparison against ``artifact`` (not confident under
    Holm); None otherwise."""

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
            f"{said}. {rival.id}, after it in the ship order, leads it on validation by "
            f"{comparison.difference:.2f} points [{rival_low:.2f}, {rival_high:.2f}] (McNemar p = "
            f"{comparison.p_value:.2g}), not with the ladder's confidence once every later rival within the budget "
            "is tested (Holm)"
        )


def cheapest_first(cost: float, artifact: Artifact) -> tuple[float, int, int, float]:
    """The rule's order, cheapest first: by ``cost`` on the budget's metric, then fewer params, then fewer MACs
    (a tie on a measured figure, such as the memory one ladder program's entry points share, goes to what the
    artifact computes), then the more accurate on validation."""
    return cost, artifact.params, artifact.macs, -artifact.accuracy.validation


def _climb(fitting: Sequence[Artifact], start: int, confidence: float) -> int:
    """From ``fitting[start]`` (``fitting`` cheapest first): while artifacts costlier than the current one are more
    accurate on validation with ``confidence`` (one Holm family per step), move to the cheapest of them."""
    at = start
    while costlier := fitting[at + 1 :]:
        rivals = [a.accuracy.validation_flags for a in costlier]
        wins = more_accurate_than(fitting[at].accuracy.validation_flags, rivals, confidence)
        ahead = [k for k, win in enumerate(wins) if win is not None]
        if not ahead:
            break
        at += 1 + ahead[0]
    return at


def ship_path(
    artifacts: Sequence[Artifact], cost: Callable[[Artifact], float | None], metric: Metric, ladder: LadderPolicy
) -> list[tuple[float, Artifact]]:
    """The module's rule along one cost: ``(limit, shipped)`` for each step of ``artifacts`` by ``cost``, a figure
    of ``metric``, ascending (an artifact whose cost is None never fits). A step is a band of costs within the
    ladder's slack for ``metric`` above its cheapest (``LadderPolicy.slack``: a measured figure's noise,
    ``ladder.measured_slack``; counted figures take none), ordered inside by
    ``cheapest_first`` on the band's cost, so what the artifacts compute breaks the tie. At the first step the climb
    starts from the cheapest artifact; at each next one it starts from the artifact shipped at the last, among
    those within the new limit, at ``ladder.confidence``. So more room never ships an artifact the rule had
    already climbed past (a larger Holm family at once could otherwise lose a win that was confident), and one
    order of the shipped artifacts serves every limit (``runtime_index.ship_ranks``)."""
    return _walk(artifacts, cost, metric, ladder)[0]


def _walk(
    artifacts: Sequence[Artifact], cost: Callable[[Artifact], float | None], metric: Metric, ladder: LadderPolicy
) -> tuple[list[tuple[float, Artifact]], list[Artifact]]:
    """``ship_path``, and the order it walked the artifacts in (None costs left out)."""
    slack = ladder.slack([metric]).get(metric.value, 0.0)
    known = sorted(((c, a) for a in artifacts if (c := cost(a)) is not None), key=lambda ca: ca[0])
    bands: list[list[tuple[float, Artifact]]] = []
    for c, a in known:
        if bands and c <= bands[-1][0][0] * (1.0 + slack):
            bands[-1].append((c, a))
        else:
            bands.append([(c, a)])
    ordered: list[Artifact] = []
    path: list[tuple[float, Artifact]] = []
    for band in bands:
        ordered += sorted((a for _, a in band), key=lambda a: cheapest_first(band[0][0], a))
        start = 0 if not path else next(k for k, a in enumerate(ordered) if a is path[-1][1])
        path.append((band[-1][0], ordered[_climb(ordered, start, ladder.confidence)]))
    return path, ordered


def _choose(
    artifacts: list[Artifact], budget: Budget | None, source: CostSource, ladder: LadderPolicy
) -> tuple[Artifact | None, tuple[Artifact, PairedComparison] | None]:
    """``ship_path`` on the budget's metric (no limit: params) over the artifacts within ``budget``: the artifact
    to ship, and the most accurate one after it in the walk's order that was passed over (or None)."""
    metric = Metric.PARAMS if budget is None else budget.metric
    costs = {id(a): figure(metric, a, source) for a in artifacts}
    fitting = [a for a in artifacts if (c := costs[id(a)]) is not None and (budget is None or c <= budget.limit)]
    path, ordered = _walk(fitting, lambda a: costs[id(a)], metric, ladder)
    if not path:
        return None, None
    chosen = path[-1][1]
    after = ordered[next(k for k, a in enumerate(ordered) if a is chosen) + 1 :]
    leader = max(after, key=lambda a: a.accuracy.validation, default=None)
    if leader is None or leader.accuracy.validation <= chosen.accuracy.validation:
        return chosen, None
    flags = leader.accuracy.validation_flags, chosen.accuracy.validation_flags
    return chosen, (leader, compare_paired(*flags, ladder.confidence))


def _target_fields(manifest: Manifest) -> tuple[list[Budget], CostSource, list[str], LadderPolicy]:
    """The target's budgets (ascending), cost source, backends and ladder policy, from the manifest's copy."""
    target = manifest.target
    try:
        listed = target.get("budgets")
        budgets = [Budget.model_validate(b) for b in (listed if isinstance(listed, list) else [])]
        costs, runtime = target.get("costs"), target.get("runtime")
        source = CostSource(costs.get("source", CostSource.PREDICTED) if isinstance(costs, dict) else "predicted")
        named = runtime.get("backends", []) if isinstance(runtime, dict) else []
        ladder = ladder_policy(manifest)
    except (ValidationError, ValueError) as exc:
        raise BundleError(f"manifest.json: target: not a valid target ({str(exc).splitlines()[0]})") from None
    backends = list(dict.fromkeys([*map(str, named), *(a.backend for a in manifest.artifacts)]))
    return sorted(budgets, key=lambda b: (b.metric, b.limit)), source, backends, ladder


def ladder_policy(manifest: Manifest) -> LadderPolicy:
    """The target's ``ladder`` policy, from the manifest's copy of the target (ValidationError if invalid)."""
    ladder = manifest.target.get("ladder")
    return LadderPolicy.model_validate(ladder if isinstance(ladder, dict) else {})


def recommend(manifest: Manifest) -> list[Recommendation]:
    """One recommendation per backend of the target and per budget (ascending), then with no limit."""
    budgets, source, backends, ladder = _target_fields(manifest)
    by_backend = {backend: [a for a in manifest.artifacts if a.backend == backend] for backend in backends}
    return [
        Recommendation(backend, budget, source, *_choose(by_backend[backend], budget, source, ladder))
        for backend in backends
        for budget in [*budgets, None]
    ]

"""What to ship: for each backend and each budget of the target, the shipped artifact to use.

The rule, stated once: among the backend's shipped artifacts (parents included) whose figure on the budget's
metric is within the limit, the one most accurate on validation (the split every decision is made on); on a
tie, the cheaper on that metric. A budget holds each artifact to the figure ``budget_figure`` gives for the
target's cost source, as the manifest's ``budget_check`` does. Reads only the manifest.
"""

from __future__ import annotations

import dataclasses

from pydantic import ValidationError

from restnetc.bundle.budget_check import budget_figure
from restnetc.bundle.manifest import Artifact, BundleError, Manifest
from restnetc.config.target import Budget, CostSource, Metric
from restnetc.config.units import format_count


def figure(metric: Metric, artifact: Artifact, source: CostSource) -> float | None:
    """``artifact``'s figure for ``metric`` as a budget holds it (``budget_figure``), by cost ``source``."""
    return budget_figure(metric, artifact.params, artifact.macs, artifact.latency_ms, artifact.memory_bytes, source)


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The artifact to ship for one backend under one budget (None: no limit); ``artifact`` is None when no
    shipped artifact of the backend fits. ``source``: the target's cost source the budget is held to."""

    backend: str
    budget: Budget | None
    source: CostSource
    artifact: Artifact | None

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
        return (
            f"{self.backend}, {limit}: ship {a.id} ({a.file}): {a.accuracy.artifact:.2f}% top-1 on test "
            f"[{low:.1f}, {high:.1f}], validation {a.accuracy.validation:.2f}%; {format_count(a.params)} params, "
            f"{format_count(a.macs)} MACs; {host[0]:.3g} ms and {host[1]:.3g} MB on the build host{held}"
        )


def _best(artifacts: list[Artifact], budget: Budget | None, source: CostSource) -> Artifact | None:
    metric = Metric.PARAMS if budget is None else budget.metric
    figures = {id(a): figure(metric, a, source) for a in artifacts}
    fitting = [a for a in artifacts if budget is None or ((f := figures[id(a)]) is not None and f <= budget.limit)]
    return max(fitting, key=lambda a: (a.accuracy.validation, -(figures[id(a)] or 0.0)), default=None)


def _target_fields(manifest: Manifest) -> tuple[list[Budget], CostSource, list[str]]:
    """The target's budgets (ascending), cost source and backends, from the manifest's copy of the target."""
    target = manifest.target
    try:
        listed = target.get("budgets")
        budgets = [Budget.model_validate(b) for b in (listed if isinstance(listed, list) else [])]
        costs, runtime = target.get("costs"), target.get("runtime")
        source = CostSource(costs.get("source", CostSource.PREDICTED) if isinstance(costs, dict) else "predicted")
        named = runtime.get("backends", []) if isinstance(runtime, dict) else []
    except (ValidationError, ValueError) as exc:
        raise BundleError(f"manifest.json: target: not a valid target ({str(exc).splitlines()[0]})") from None
    backends = list(dict.fromkeys([*map(str, named), *(a.backend for a in manifest.artifacts)]))
    return sorted(budgets, key=lambda b: (b.metric, b.limit)), source, backends


def recommend(manifest: Manifest) -> list[Recommendation]:
    """One recommendation per backend of the target and per budget (ascending), then with no limit."""
    budgets, source, backends = _target_fields(manifest)
    by_backend = {backend: [a for a in manifest.artifacts if a.backend == backend] for backend in backends}
    return [
        Recommendation(backend, budget, source, _best(by_backend[backend], budget, source))
        for backend in backends
        for budget in [*budgets, None]
    ]

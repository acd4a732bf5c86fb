"""What to ship: for each backend and each budget of the target, the shipped artifact to use.

The rule, stated once: among the backend's shipped artifacts (parents included) whose figure on the budget's
metric is within the limit, the one most accurate on validation (the split every decision is made on); on a
tie, the cheaper on that metric. Latency and memory figures are the device's when its logs were ingested,
else this host's. Reads only the manifest.
"""

from __future__ import annotations

import dataclasses

from restnetc.bundle.manifest import Artifact, Manifest
from restnetc.config.target import Budget, Metric
from restnetc.config.units import format_count


def figure(metric: Metric, artifact: Artifact) -> float:
    """``artifact``'s figure for ``metric``: counted (params, MACs, FLOPs), or measured (device if known)."""
    if metric is Metric.PARAMS:
        return artifact.params
    if metric is Metric.MACS:
        return artifact.macs
    if metric is Metric.FLOPS:
        return 2 * artifact.macs
    if metric is Metric.LATENCY_MS:
        device = artifact.latency_ms.device
        return device.inference if device is not None else artifact.latency_ms.host.median
    device_memory = artifact.memory_bytes.device
    if device_memory is not None and device_memory.peak is not None:
        return device_memory.peak
    return artifact.memory_bytes.host.peak_delta


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """The artifact to ship for one backend under one budget (None: no limit); ``artifact`` is None when no
    shipped artifact of the backend fits."""

    backend: str
    budget: Budget | None
    artifact: Artifact | None

    def sentence(self) -> str:
        """The recommendation in words, with the figures that justify it."""
        limit = "no limit" if self.budget is None else self.budget.describe()
        if self.artifact is None:
            return f"{self.backend}, {limit}: no shipped artifact fits; loosen the budget or build smaller rungs"
        a = self.artifact
        low, high = a.accuracy.interval
        where = "device" if a.latency_ms.device is not None else "this host"
        return (
            f"{self.backend}, {limit}: ship {a.id} ({a.file}): {a.accuracy.artifact:.2f}% top-1 on test "
            f"[{low:.1f}, {high:.1f}], validation {a.accuracy.validation:.2f}%; {format_count(a.params)} params, "
            f"{format_count(a.macs)} MACs, {figure(Metric.LATENCY_MS, a):.3g} ms and "
            f"{figure(Metric.MEMORY_MB, a) / 1e6:.3g} MB on {where}"
        )


def _best(artifacts: list[Artifact], budget: Budget | None) -> Artifact | None:
    fitting = [a for a in artifacts if budget is None or figure(budget.metric, a) <= budget.limit]
    metric = Metric.PARAMS if budget is None else budget.metric
    return max(fitting, key=lambda a: (a.accuracy.validation, -figure(metric, a)), default=None)


def recommend(manifest: Manifest) -> list[Recommendation]:
    """One recommendation per backend (manifest order) and per target budget (ascending), then with no limit."""
    listed = manifest.target.get("budgets")
    budgets = sorted(
        (Budget.model_validate(b) for b in (listed if isinstance(listed, list) else [])),
        key=lambda b: (b.metric, b.limit),
    )
    backends = list(dict.fromkeys(a.backend for a in manifest.artifacts))
    return [
        Recommendation(backend, budget, _best([a for a in manifest.artifacts if a.backend == backend], budget))
        for backend in backends
        for budget in [*budgets, None]
    ]

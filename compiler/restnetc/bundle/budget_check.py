"""A built artifact's predicted cost (the cost model stitch selection used), and its measured budget (latency,
memory) held to the target's cost source."""

from __future__ import annotations

from restnetc.budget.cost_table import CostTable
from restnetc.budget.costs import Cost
from restnetc.bundle.ladder import Rung
from restnetc.bundle.manifest import BudgetCheck, Latency, Memory
from restnetc.config.target import CostSource, Metric


def predicted_costs(table: CostTable, rung: Rung) -> tuple[float, int]:
    """Latency (ms) and peak memory (bytes) of ``rung`` from ``table``, by the cost model selection used."""
    if rung.stitch is None:
        assert rung.parent is not None
        prediction = table.predict_model(rung.parent)
    else:
        s = rung.stitch
        assert rung.stitch_cost is not None
        prediction = table.predict(s.front_model, s.front_block, s.back_model, s.back_block, rung.stitch_cost)
    return round(prediction.latency_ms, 4), round(prediction.memory_bytes)


def budget_figure(
    metric: Metric, params: int, macs: int, latency: Latency, memory: Memory, source: CostSource
) -> float | None:
    """The figure a budget of ``metric`` holds an artifact to (None when it is not known).

    Counted metrics: parameters, MACs, FLOPs (2 per MAC). Measured ones, by the target's cost ``source``:
    ``host`` the end-to-end measurement on this host; ``predicted`` the cost table's prediction; ``device`` the
    device's own figure once ``bench ingest`` recorded it, else the prediction.
    """
    if not metric.measured:
        return Cost(params, macs).counted(metric)
    if metric is Metric.LATENCY_MS:
        if source is CostSource.HOST:
            return latency.host.median
        return latency.device.inference if source is CostSource.DEVICE and latency.device else latency.predicted
    if source is CostSource.HOST:
        return memory.host.peak_delta
    device = memory.device.peak if source is CostSource.DEVICE and memory.device else None
    return device if device is not None else memory.predicted


def check_budget(rung: Rung, source: CostSource, latency: Latency, memory: Memory) -> BudgetCheck | None:
    """``rung``'s measured budget against ``budget_figure`` by ``source`` (None for a parent or a counted
    budget, or when that figure is not known)."""
    budget = rung.budget
    if budget is None or not budget.metric.measured:
        return None
    figure = budget_figure(budget.metric, rung.params, rung.macs, latency, memory, source)
    if figure is None:
        return None
    return BudgetCheck(
        metric=budget.metric.value, limit=budget.limit, figure=figure, source=source.value, met=figure <= budget.limit
    )

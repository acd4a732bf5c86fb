"""A built artifact's predicted cost (the cost model stitch selection used), and its measured budget (latency,
memory) held to the target's cost source."""

from __future__ import annotations

from restnetc.budget.cost_table import CostTable
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


def check_budget(rung: Rung, source: CostSource, latency: Latency, memory: Memory) -> BudgetCheck | None:
    """``rung``'s measured budget against the source's figure (None for a parent or a counted budget).

    ``host`` holds the end-to-end host measurement to the budget; ``predicted`` and ``device`` the cost
    table's prediction (for ``device`` the device's own end-to-end figures arrive later, from ``bench ingest``).
    """
    budget = rung.budget
    if budget is None or not budget.metric.measured:
        return None
    host = source is CostSource.HOST
    if budget.metric is Metric.LATENCY_MS:
        figure = latency.host.median if host else latency.predicted
    else:
        figure = memory.host.peak_delta if host else memory.predicted
    if figure is None:
        return None
    return BudgetCheck(
        metric=budget.metric.value, limit=budget.limit, figure=figure, source=source.value, met=figure <= budget.limit
    )

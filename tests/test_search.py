"""Stitch-point selection per budget rung, and exact costs of stitched models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restnetc.budget.costs import Cost, measure, part_costs
from restnetc.budget.measure import HostLatency, HostMemory
from restnetc.bundle.budget_check import budget_figure
from restnetc.bundle.manifest import Latency, Memory
from restnetc.config.target import Budget, CostSource, Metric
from restnetc.errors import BudgetError
from restnetc.frontend.search import Candidate, rank_candidates, select, static_figure
from restnetc.frontend.stitch import build_stitched
from restnetc.models import decompose
from tests import zoo

# 3 front blocks x 2 back blocks; cost grows with the front index and falls with the back index.
CKA = np.array([[0.9, 0.5], [0.8, 0.7], [0.6, 0.95]])


def cost_of(i: int, j: int) -> Cost:
    return Cost(params=100 + 100 * i - 40 * j, macs=1000 * (i + 1) - 300 * j)


def params(limit: float) -> Budget:
    return Budget(metric=Metric.PARAMS, limit=limit)


def test_candidates_are_ranked_by_cka() -> None:
    ranked = rank_candidates(CKA, cost_of)
    assert [(c.front_block, c.back_block) for c in ranked][:3] == [(2, 1), (0, 0), (1, 0)]
    assert ranked[0].cka == pytest.approx(0.95)


def test_lowest_rung_is_the_papers_rule_and_rungs_fill_bands() -> None:
    ranked = rank_candidates(CKA, cost_of)
    # costs (params): (0,0)=100 (0,1)=60 (1,0)=200 (1,1)=160 (2,0)=300 (2,1)=260
    choices = select(ranked, [params(320), params(150), params(210)])
    picked = {c.budget.limit: (c.candidate.front_block, c.candidate.back_block) for c in choices}
    assert picked == {150: (0, 0), 210: (1, 0), 320: (2, 1)}
    assert [c.budget.limit for c in choices] == [320, 150, 210], "choices follow the target's order"


def test_flops_are_twice_macs() -> None:
    ranked = rank_candidates(CKA, cost_of)
    by_macs = select(ranked, [Budget(metric=Metric.MACS, limit=1000)])[0].candidate
    by_flops = select(ranked, [Budget(metric=Metric.FLOPS, limit=2000)])[0].candidate
    assert by_macs == by_flops


def test_selection_and_the_bundles_budget_check_read_one_counted_figure() -> None:
    """Every counted metric's figure is the cost's own (``Cost.counted``), in search and in ``budget_figure``; a
    metric added without a rule there fails here (None, or figures that disagree)."""
    cost = cost_of(2, 1)
    host = HostLatency(median=1.0, p10=1.0, p90=1.0, threads=1, runs=1, warmup=0, load_average=(0.0, 0.0, 0.0))
    measured = Latency(host=host), Memory(host=HostMemory(peak_delta=1, peak_total=1))
    for metric in (m for m in Metric if not m.measured):
        figure = cost.counted(metric)
        assert figure is not None and figure > 0, metric
        assert static_figure(Candidate(2, 1, 0.5, cost), metric) == figure
        assert budget_figure(metric, cost.params, cost.macs, *measured, CostSource.HOST) == figure
    assert [m for m in Metric if cost.counted(m) is None] == [m for m in Metric if m.measured]
    assert (cost.counted(Metric.PARAMS), cost.counted(Metric.MACS), cost.counted(Metric.FLOPS)) == (
        cost.params,
        cost.macs,
        2 * cost.macs,
    )


def test_infeasible_budget_states_the_achievable_range() -> None:
    with pytest.raises(BudgetError, match=r"params <= 10 is infeasible: stitched variants cost between 60 and 300"):
        select(rank_candidates(CKA, cost_of), [params(10)])


def test_empty_band_is_a_clear_error() -> None:
    with pytest.raises(BudgetError, match=r"params <= 110: no variant costs between the rung below it \(100\)"):
        select(rank_candidates(CKA, cost_of), [params(100), params(110)])


def test_measured_budgets_need_a_cost_table() -> None:
    with pytest.raises(BudgetError, match="latency_ms budgets need the target's cost table"):
        select(rank_candidates(CKA, cost_of), [Budget(metric=Metric.LATENCY_MS, limit=5)])


def test_measured_budgets_select_by_the_given_figure() -> None:
    """A latency rung takes the most similar candidate whose predicted latency is in its band."""
    ranked = rank_candidates(CKA, cost_of)

    def latency(candidate: Candidate, metric: Metric) -> float:  # a stand-in cost table: 1 ms per 100 params
        return candidate.cost.params / 100 if metric is Metric.LATENCY_MS else static_figure(candidate, metric)

    (choice,) = select(ranked, [Budget(metric=Metric.LATENCY_MS, limit=1.5)], latency)
    assert choice.candidate.cost.params <= 150
    assert choice.candidate == next(c for c in ranked if c.cost.params <= 150)


@pytest.mark.parametrize(
    ("front_name", "back_name", "i", "j"), [("resnet", "vgg", 1, 2), ("deit-distilled", "vit", 0, 1)]
)
def test_summed_part_costs_equal_the_measured_stitched_model(front_name: str, back_name: str, i: int, j: int) -> None:
    front, back = decompose(zoo.make(front_name)), decompose(zoo.make(back_name, 1))
    model = build_stitched(front, i, back, j, zoo.SIZE)
    assert model.stitch is not None
    stitch = measure(model.stitch, torch.zeros(1, *model.stitch.source.shape))
    predicted = part_costs(front, zoo.SIZE).front(i) + stitch + part_costs(back, zoo.SIZE).back(j)
    assert predicted == measure(model, torch.zeros(1, 3, zoo.SIZE, zoo.SIZE))
    assert predicted.macs > 0


def test_parent_total_cost_matches_the_whole_model() -> None:
    model = zoo.make("efficientnet-lite")
    blocks = decompose(model)
    assert part_costs(blocks, zoo.SIZE).total == measure(model, torch.zeros(1, 3, zoo.SIZE, zoo.SIZE))

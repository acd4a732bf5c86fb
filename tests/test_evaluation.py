"""Accuracy statistics (Wilson intervals, paired comparisons) and Pareto dominance with a paired test."""

from __future__ import annotations

import numpy as np
import pytest

from restnetc.evaluation import Contender, compare_paired, judge, more_accurate, more_accurate_than, wilson_interval


def paired(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of A and B on the same images, with these counts of each outcome (shuffled, fixed seed)."""
    a = np.array([True] * both + [True] * a_only + [False] * b_only + [False] * neither)
    b = np.array([True] * both + [False] * a_only + [True] * b_only + [False] * neither)
    order = np.random.default_rng(0).permutation(a.size)
    return a[order], b[order]


def contender(id: str, correct: np.ndarray, params: float = 3.4e6, macs: float = 33.7e6) -> Contender:
    return Contender(id, {"params": params, "macs": macs}, correct)


# --- Wilson -------------------------------------------------------------------------------------------------


def test_wilson_interval_matches_the_closed_form_and_contains_the_estimate() -> None:
    # (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), p = 0.81, n = 100, z = 1.95996
    low, high = wilson_interval(81, 100)
    assert low == pytest.approx(72.2212, abs=1e-3)
    assert high == pytest.approx(87.4852, abs=1e-3)
    assert low < 81.0 < high
    assert high - 81.0 < 81.0 - low  # skewed towards 50 %, unlike the symmetric Wald interval


def test_wilson_interval_narrows_with_more_images_and_widens_with_confidence() -> None:
    small, large = wilson_interval(81, 100), wilson_interval(810, 1000)
    assert large[0] > small[0] and large[1] < small[1]
    assert large[0] < 81.0 < large[1]
    wide = wilson_interval(81, 100, confidence=0.99)
    assert wide[0] < small[0] and wide[1] > small[1]


def test_wilson_interval_at_the_edges_and_refusals() -> None:
    low, high = wilson_interval(0, 20)
    assert low == pytest.approx(0.0, abs=1e-9) and high > 10.0  # not the empty Wald interval [0, 0]
    low, high = wilson_interval(20, 20)
    assert high == pytest.approx(100.0) and low < 90.0
    for correct, total in ((5, 4), (-1, 4), (0, 0)):
        with pytest.raises(ValueError):
            wilson_interval(correct, total)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# --- paired comparison ----------------------------------------------------------------------------------------


def test_mcnemar_p_value_is_the_exact_binomial_of_the_discordant_images() -> None:
    a, b = paired(both=50, a_only=2, b_only=8, neither=40)
    # two-sided: 2 * P(X <= 2), X ~ Binomial(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    expected = 2 * (1 + 10 + 45) / 1024
    forward, backward = compare_paired(a, b), compare_paired(b, a)
    assert (forward.a_only, forward.b_only) == (2, 8)
    assert (backward.a_only, backward.b_only) == (8, 2)
    assert forward.p_value == pytest.approx(expected) and backward.p_value == pytest.approx(expected)
    # concordant images do not change the test
    c, d = paired(both=5000, a_only=2, b_only=8, neither=0)
    assert compare_paired(c, d).p_value == pytest.approx(expected)


def test_no_discordant_image_gives_p_one_and_a_non_degenerate_interval() -> None:
    a, _ = paired(both=70, a_only=0, b_only=0, neither=30)
    result = compare_paired(a, a.copy())
    assert result.p_value == 1.0 and result.difference == 0.0
    low, high = result.interval
    assert low < 0.0 < high  # the paired Wald interval would be [0, 0] here


def test_paired_interval_sign_and_reference_value() -> None:
    # Fagerland, Laake & Veierød (2017), ch. 8, Cavo et al. (2012): both 59, A only 6, B only 16, neither 80;
    # Newcombe square-and-add interval -0.1186 to -0.0046 (estimate -0.0621).
    a, b = paired(both=59, a_only=6, b_only=16, neither=80)
    ab, ba = compare_paired(a, b), compare_paired(b, a)
    assert ab.difference == pytest.approx(-100 * 10 / 161)
    assert ab.interval[0] == pytest.approx(-11.86, abs=0.006)
    assert ab.interval[1] == pytest.approx(-0.46, abs=0.006)
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.interval[0] == pytest.approx(-ab.interval[1]) and ba.interval[1] == pytest.approx(-ab.interval[0])
    assert ba.interval[0] > 0.0  # B is clearly better: the whole interval is positive
    assert ba.interval[0] < ba.difference < ba.interval[1]


def test_compare_paired_refuses_mismatched_or_non_bool_arrays() -> None:
    a, b = paired(both=5, a_only=1, b_only=1, neither=3)
    with pytest.raises(ValueError):
        compare_paired(a, b[:-1])
    with pytest.raises(ValueError):
        compare_paired(a.astype(int), b.astype(int))
    with pytest.raises(ValueError):
        compare_paired(a.reshape(2, 5), b.reshape(2, 5))
    with pytest.raises(ValueError):
        compare_paired(a[:0], b[:0])


def _ahead(images: int, ahead: int) -> np.ndarray:
    """Right on the first ``images - 100 + ahead`` images: ``ahead`` more than ``_ahead(images, 0)``, all
    discordant the same way (McNemar p = 2 / 2**ahead)."""
    return np.arange(images) < images - 100 + ahead


def test_several_contenders_are_one_family_of_tests_holm_step_down() -> None:
    """p = 0.031 (6 ahead) wins alone; as one of two such tests it does not (0.031 >= 0.05 / 2). With p of
    0.00098, 0.0156 and 0.031, Holm accepts all three (below 0.05/3, 0.05/2, 0.05); when the smallest p is not
    below 0.05/3 nothing wins. A contender significantly worse than the reference never wins."""
    reference = _ahead(400, 0)
    assert more_accurate(_ahead(400, 6), reference) is not None
    assert more_accurate_than(reference, [_ahead(400, 6)])[0] == more_accurate(_ahead(400, 6), reference)
    assert more_accurate_than(reference, [_ahead(400, 6), _ahead(400, 6)]) == [None, None]
    wins = more_accurate_than(reference, [_ahead(400, 11), _ahead(400, 7), _ahead(400, 6)])
    assert all(win is not None for win in wins)
    assert more_accurate_than(reference, [_ahead(400, 2), _ahead(400, 6), _ahead(400, 6)]) == [None, None, None]
    assert more_accurate_than(_ahead(400, 20), [reference]) == [None], "worse with confidence is not better"


# --- dominance ------------------------------------------------------------------------------------------------


def test_cheaper_and_significantly_more_accurate_dominates() -> None:
    # 200 images: the parent is right on 150, the variant on 130 (25 vs 5 discordant), p ~ 3e-4
    parent, variant = paired(both=125, a_only=25, b_only=5, neither=45)  # 75% vs 65%
    standings = judge(
        [
            contender("variant-3-5", variant, params=3.40e6, macs=33.7e6),
            contender("parent-efficientnet-lite0", parent, params=3.38e6, macs=31.4e6),
        ]
    )
    loser, winner = standings["variant-3-5"], standings["parent-efficientnet-lite0"]
    assert winner.front and winner.dominated_by is None and winner.reason is None
    assert not loser.front
    assert loser.dominated_by == "parent-efficientnet-lite0"
    assert loser.comparison is not None and loser.comparison.difference == pytest.approx(10.0)
    assert loser.comparison.p_value < 0.001
    reason = loser.reason or ""
    assert reason.startswith("parent-efficientnet-lite0 costs no more")
    assert "params 3.38M <= 3.4M" in reason and "macs 31.4M <= 33.7M" in reason
    assert "75.00% vs 65.00%" in reason
    assert f"p={loser.comparison.p_value:.2g}" in reason


def test_cheaper_but_not_significantly_more_accurate_does_not_dominate() -> None:
    better, worse = paired(both=120, a_only=6, b_only=3, neither=71)  # 63% vs 61.5%, p = 0.51
    contenders = [contender("worse", worse, params=4e6, macs=40e6), contender("better", better, 3e6, 30e6)]
    assert all(s.front for s in judge(contenders).values())
    # the same data with a lax enough confidence is dominance: the test above is what kept it on the front
    assert judge(contenders, confidence=0.4)["worse"].dominated_by == "better"


def test_more_accurate_but_more_expensive_on_one_metric_does_not_dominate() -> None:
    better, worse = paired(both=125, a_only=25, b_only=5, neither=45)
    dearer_macs = [contender("worse", worse, params=4e6, macs=30e6), contender("better", better, 3e6, 30.1e6)]
    assert all(s.front for s in judge(dearer_macs).values())
    dearer_params = [contender("worse", worse, params=4e6, macs=30e6), contender("better", better, 4.01e6, 20e6)]
    assert all(s.front for s in judge(dearer_params).values())
    # control: no dearer on either metric, and it dominates
    cheaper = [contender("worse", worse, params=4e6, macs=30e6), contender("better", better, 4e6, 29.9e6)]
    assert judge(cheaper)["worse"].dominated_by == "better"


def test_equal_costs_and_significantly_more_accurate_dominates() -> None:
    better, worse = paired(both=125, a_only=25, b_only=5, neither=45)
    standings = judge([contender("worse", worse), contender("better", better)])
    assert standings["worse"].dominated_by == "better" and standings["better"].front
    # equal costs and identical predictions: nobody dominates
    twins = judge([contender("one", worse), contender("two", worse.copy())])
    assert twins["one"].front and twins["two"].front


def test_a_measured_cost_within_the_slack_counts_as_no_more() -> None:
    better, worse = paired(both=125, a_only=25, b_only=5, neither=45)  # p ~ 3e-4

    def timed(id: str, correct: np.ndarray, latency: float) -> Contender:
        return Contender(id, {"params": 3e6, "latency_ms": latency}, correct)

    three_percent_slower = [timed("worse", worse, 10.0), timed("better", better, 10.3)]
    assert all(s.front for s in judge(three_percent_slower).values())
    standing = judge(three_percent_slower, slack={"latency_ms": 0.05})["worse"]
    assert standing.dominated_by == "better"
    assert "costs no more within measurement noise (params 3M <= 3M, latency 10.3ms ~ 10ms (within the 5% slack))" in (
        standing.reason or ""
    )
    # beyond the slack it is dearer, and the slack of one metric never loosens another
    assert judge([timed("worse", worse, 10.0), timed("better", better, 10.6)], slack={"latency_ms": 0.05})[
        "worse"
    ].front
    dearer_params = [Contender("worse", {"params": 3e6, "latency_ms": 10.0}, worse)]
    dearer_params.append(Contender("better", {"params": 3.01e6, "latency_ms": 9.0}, better))
    assert judge(dearer_params, slack={"latency_ms": 0.05})["worse"].front


def test_slack_is_refused_out_of_range_or_for_an_unknown_metric() -> None:
    a, b = paired(both=10, a_only=1, b_only=1, neither=2)
    pair = [contender("x", a), contender("y", b)]
    with pytest.raises(ValueError, match=r"slack must be in \[0, 1\)"):
        judge(pair, slack={"params": -0.1})
    with pytest.raises(ValueError, match=r"slack names metrics \['latency_ms'\] no contender has"):
        judge(pair, slack={"latency_ms": 0.05})


def test_a_rungs_cheaper_rivals_are_one_family_of_tests() -> None:
    """One cheaper rival 6 images ahead (McNemar p = 0.031) dominates; three such rivals are one family (Holm:
    0.031 is not below 0.05 / 3), so none does: with one test per pair, the more rivals a rung had, the likelier
    one of them would drop it by luck. A dearer rival is not in the family (it cannot dominate), and a rival
    far enough ahead still dominates among them."""
    weak, lucky = _ahead(400, 0), _ahead(400, 6)
    assert judge([contender("weak", weak, 5e6), contender("r0", lucky, 4e6)])["weak"].dominated_by == "r0"
    three = [contender("weak", weak, 5e6), *(contender(f"r{k}", lucky.copy(), 4e6) for k in range(3))]
    assert judge(three)["weak"].front
    dearer = [contender("weak", weak, 5e6), contender("r0", lucky, 4e6), contender("big", lucky.copy(), 6e6)]
    assert judge(dearer)["weak"].dominated_by == "r0"
    strong = judge([*three, contender("strong", _ahead(400, 12), 4e6)])["weak"]
    assert strong.dominated_by == "strong"
    assert "Holm over its 4 rivals that cost no more" in (strong.reason or "")


def test_the_most_accurate_of_several_dominators_is_named() -> None:
    # 300 images: best right on 240, good on 210, weak on 150; both others are cheaper than weak
    rng = np.random.default_rng(1)
    weak = np.zeros(300, dtype=bool)
    weak[:150] = True
    good = weak.copy()
    good[150:210] = True  # weak + 60 more
    best = good.copy()
    best[210:240] = True  # good + 30 more
    order = rng.permutation(300)
    contenders = [
        contender("weak", weak[order], params=5e6, macs=50e6),
        contender("good", good[order], params=2e6, macs=20e6),  # cheapest, found first
        contender("best", best[order], params=4e6, macs=40e6),
    ]
    standings = judge(contenders)
    assert standings["weak"].dominated_by == "best"
    assert "80.00% vs 50.00%" in (standings["weak"].reason or "")
    assert standings["good"].front and standings["best"].front  # best is dearer than good


def test_equally_accurate_dominators_tie_on_the_first_metric_then_id() -> None:
    weak, strong = paired(both=100, a_only=0, b_only=40, neither=60)
    standings = judge(
        [
            contender("weak", weak, params=5e6, macs=50e6),
            contender("b-cheap", strong, params=2e6, macs=45e6),
            contender("a-dear", strong.copy(), params=3e6, macs=10e6),
        ]
    )
    assert standings["weak"].dominated_by == "b-cheap"  # cheapest params (the first metric), not on macs
    standings = judge(
        [
            contender("weak", weak, params=5e6, macs=50e6),
            contender("b-same", strong, params=2e6, macs=45e6),
            contender("a-same", strong.copy(), params=2e6, macs=45e6),
        ]
    )
    assert standings["weak"].dominated_by == "a-same"


def test_mismatched_metrics_and_images_are_refused() -> None:
    a, b = paired(both=10, a_only=5, b_only=0, neither=5)
    with pytest.raises(ValueError, match="same cost metrics"):
        judge([Contender("x", {"params": 1.0, "macs": 1.0}, a), Contender("y", {"params": 1.0}, b)])
    with pytest.raises(ValueError, match="same cost metrics"):
        judge([Contender("x", {"params": 1.0}, a), Contender("y", {"macs": 1.0}, b)])
    with pytest.raises(ValueError):
        judge([contender("x", a), contender("y", b[:-1])])
    with pytest.raises(ValueError):
        judge([contender("x", a), contender("x", b)])


def test_latency_and_memory_read_as_ms_and_mb() -> None:
    better, worse = paired(both=125, a_only=25, b_only=5, neither=45)
    costs = {"latency_ms": 12.3, "memory_bytes": 24.1e6}
    standings = judge(
        [
            Contender("worse", {"latency_ms": 14.0, "memory_bytes": 30.2e6}, worse),
            Contender("better", costs, better),
        ]
    )
    reason = standings["worse"].reason or ""
    assert "latency 12.3ms <= 14ms" in reason and "memory 24.1MB <= 30.2MB" in reason

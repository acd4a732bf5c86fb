"""``restnetc sweep``: stitch points on a grid regardless of budgets, each fine-tuned like a search's variant."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from scipy import stats

from restnetc.budget.costs import Cost
from restnetc.frontend.search import Candidate
from restnetc.pipeline.search import sweep_grid
from restnetc.reports.sweep_outputs import correlation
from restnetc.results import SweepPoint
from tests.conftest import CliResult


def test_grid_takes_every_kth_block_and_always_the_last() -> None:
    assert sweep_grid(5, 3, 2) == {(i, j) for i in (0, 2, 4) for j in (0, 2)}
    assert sweep_grid(4, 2, 1) == {(i, j) for i in range(4) for j in range(2)}
    assert sweep_grid(3, 3, 10) == {(2, 2)}


def _point(front: int, back: int, cka: float, accuracy: float) -> SweepPoint:
    return SweepPoint(Candidate(front, back, cka, Cost(params=1000, macs=1000)), 10, 10.0, accuracy, accuracy, 1.0)


def test_within_front_correlation_ranks_back_blocks_per_front_block() -> None:
    points = [
        *(_point(0, j, cka, acc) for j, cka, acc in ((0, 0.9, 90.0), (1, 0.8, 85.0), (2, 0.7, 80.0))),
        *(_point(1, j, cka, acc) for j, cka, acc in ((0, 0.9, 80.0), (1, 0.8, 85.0), (2, 0.6, 90.0))),
        _point(2, 0, 0.5, 70.0),  # one point: no within-front figure
        *(_point(3, j, 0.4, acc) for j, acc in ((0, 60.0), (1, 65.0), (2, 61.0))),  # CKA constant: none either
    ]
    within = correlation(points)["within_front"]
    assert within["spearman_by_front_block"] == {"0": 1.0, "1": -1.0}
    assert within["mean_spearman"] == 0.0


def test_sweep_fine_tunes_every_grid_point_and_correlates_cka_with_accuracy(
    built: tuple[Path, Path, Path, Path], cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    _, project, _, cache = built  # the build's cache holds the parents and the CKA matrix
    result = cli("sweep", "--project", str(project), "--every", "7", "--out", str(tmp_path), "--cache-dir", str(cache))
    assert result.code == 0, result.stderr
    document = json.loads((tmp_path / "sweep.json").read_text())
    points = {(p["front_block"], p["back_block"]) for p in document["points"]}
    assert points == sweep_grid(document["parents"]["front"]["blocks"], document["parents"]["back"]["blocks"], 7)
    assert len(points) == 9
    for point in document["points"]:
        assert 0 < point["trainable_params"] < point["params"]
    # The figures are those of the points written beside them (recomputed here from the document).
    cka = [p["cka"] for p in document["points"]]
    tuned = [p["accuracy_finetuned"] for p in document["points"]]
    r = document["correlation"]
    assert r["pearson"] == pytest.approx(stats.pearsonr(cka, tuned).statistic, abs=1e-3)
    assert r["spearman"] == pytest.approx(stats.spearmanr(cka, tuned).statistic, abs=1e-3)
    by_front = r["within_front"]["spearman_by_front_block"]
    assert by_front and "within a front block" in result.stdout
    for block, value in by_front.items():
        group = [p for p in document["points"] if str(p["front_block"]) == block]
        ranked = stats.spearmanr([p["cka"] for p in group], [p["accuracy_finetuned"] for p in group]).statistic
        assert len(group) >= 3 and value == pytest.approx(ranked, abs=1e-3)
    assert r["within_front"]["mean_spearman"] == pytest.approx(sum(by_front.values()) / len(by_front), abs=1e-4)
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "Spearman" in result.stdout


@pytest.mark.parametrize("every", ["0", "x"])
def test_sweep_refuses_a_bad_stride(every: str, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("sweep", "--every", every, "--out", str(tmp_path))
    assert result.code == 2 and "--every" in result.stderr

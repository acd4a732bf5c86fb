"""``restnetc sweep``: stitch points on a grid regardless of budgets, each fine-tuned like a search's variant."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from restnetc.pipeline.search import sweep_grid
from tests.conftest import CliResult


def test_grid_takes_every_kth_block_and_always_the_last() -> None:
    assert sweep_grid(5, 3, 2) == {(i, j) for i in (0, 2, 4) for j in (0, 2)}
    assert sweep_grid(4, 2, 1) == {(i, j) for i in range(4) for j in range(2)}
    assert sweep_grid(3, 3, 10) == {(2, 2)}


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
        assert 0.0 <= point["accuracy_finetuned"] <= 100.0 and 0.0 <= point["cka"] <= 1.0 + 1e-6
        assert 0 < point["trainable_params"] < point["params"]
    r = document["correlation"]
    assert -1.0 <= r["pearson"] <= 1.0 and -1.0 <= r["spearman"] <= 1.0
    assert (tmp_path / "sweep.png").stat().st_size > 0
    assert "Spearman" in result.stdout


@pytest.mark.parametrize("every", ["0", "x"])
def test_sweep_refuses_a_bad_stride(every: str, cli: Callable[..., CliResult], tmp_path: Path) -> None:
    result = cli("sweep", "--every", every, "--out", str(tmp_path))
    assert result.code == 2 and "--every" in result.stderr

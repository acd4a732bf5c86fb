"""The report's accuracy-vs-cost plots: one PNG per cost axis, the Pareto front as a step line through exactly
its members in order of cost, and the accuracy cells of the report tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.figure
import pytest
from matplotlib.lines import Line2D

from restnetc.reports.bundle_report import AXES, PlotPoint, _test_accuracy, plot_accuracy
from tests.conftest import REPO
from tests.fakes import fake_artifact


def point(
    id: str, backend: str, params: float, latency: float, accuracy: float, front: bool, dropped: bool = False
) -> PlotPoint:
    return PlotPoint(
        id=id,
        backend=backend,
        role="parent" if id.startswith("parent-") else "variant",
        costs={"params": params, "macs": 10 * params, "latency": latency, "memory": 1e6 * latency},
        accuracy=accuracy,
        interval=(accuracy - 1.5, accuracy + 1.2),
        eager=accuracy + 0.3,
        front=front,
        dropped=dropped,
    )


POINTS = [
    point("parent-small", "litert", 2.0e6, 4.0, 70.0, front=True),
    point("parent-large", "litert", 5.0e6, 9.0, 80.0, front=True),
    point("stitch-01-03", "litert", 3.0e6, 7.5, 76.0, front=True),  # cheaper in params, dearer in latency
    point("stitch-02-04", "litert", 4.0e6, 6.0, 74.0, front=True),
    point("stitch-03-05", "litert", 4.5e6, 8.0, 72.0, front=False),  # dominated, shipped (policy warn)
    point("stitch-04-06", "litert", 4.8e6, 8.5, 73.0, front=False, dropped=True),
    point("parent-small", "executorch", 2.0e6, 5.0, 69.5, front=True),
    point("parent-large", "executorch", 5.0e6, 11.0, 79.5, front=True),
    point("stitch-01-03", "executorch", 3.0e6, 8.0, 68.0, front=False, dropped=True),
]


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch) -> list[matplotlib.figure.Figure]:
    """Figures as ``plot_accuracy`` saves them (it closes them afterwards)."""
    figures: list[matplotlib.figure.Figure] = []
    original = matplotlib.figure.Figure.savefig

    def keep(self: matplotlib.figure.Figure, *args: Any, **kwargs: Any) -> None:
        figures.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


@pytest.mark.parametrize("axis", list(AXES))
def test_each_axis_writes_a_png_with_the_front_as_a_step_line(
    axis: str, tmp_path: Path, saved: list[matplotlib.figure.Figure]
) -> None:
    path = tmp_path / f"accuracy_vs_{axis}.png"
    fronts = plot_accuracy(POINTS, axis, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scale = AXES[axis].scale
    expected = {
        backend: sorted((p for p in POINTS if p.backend == backend and p.front), key=lambda p: p.costs[axis])
        for backend in ("executorch", "litert")
    }
    assert fronts == {backend: [p.id for p in members] for backend, members in expected.items()}
    (figure,) = saved
    subplots = [a for a in figure.axes if a.get_title()]
    assert [a.get_title() for a in subplots] == ["executorch", "litert"]
    for axes, backend in zip(subplots, ("executorch", "litert"), strict=True):
        (line,) = [a for a in axes.get_lines() if a.get_gid() == "pareto-front"]
        assert isinstance(line, Line2D)
        assert line.get_drawstyle() == "steps-post"
        members = expected[backend]
        assert list(line.get_xdata()) == pytest.approx([p.costs[axis] * scale for p in members])
        assert list(line.get_ydata()) == pytest.approx([p.accuracy for p in members])
        # every point of the backend, shipped or dropped, is labelled
        labels = {t.get_text() for t in axes.texts}
        ids = {p.id.removeprefix("parent-") for p in POINTS if p.backend == backend}
        assert labels == ids


def test_the_front_follows_the_axis_cost_order(tmp_path: Path) -> None:
    # on params stitch-01-03 (3.0M) comes before stitch-02-04 (4.0M); on latency after it (7.5 vs 6.0 ms)
    litert_params = plot_accuracy(POINTS, "params", tmp_path / "params.png")["litert"]
    litert_latency = plot_accuracy(POINTS, "latency", tmp_path / "latency.png")["litert"]
    assert litert_params == ["parent-small", "stitch-01-03", "stitch-02-04", "parent-large"]
    assert litert_latency == ["parent-small", "stitch-02-04", "stitch-01-03", "parent-large"]


def test_unknown_axis_and_no_point_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown cost axis"):
        plot_accuracy(POINTS, "flops", tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_accuracy([], "params", tmp_path / "x.png")


def test_accuracy_cell_shows_the_interval() -> None:
    made_up = fake_artifact(0, "litert/a.tflite", b"x").accuracy
    accuracy = made_up.model_copy(update={"artifact": 81.23, "images": 1000, "interval": (79.41, 82.87)})
    assert _test_accuracy(accuracy) == "81.2% [79.4, 82.9]"


_CALLER_BACKEND = """
import sys
import matplotlib
matplotlib.use("svg")  # the caller's choice, which restnetc must leave alone
import matplotlib.pyplot as plt
import restnetc.api, restnetc.reports.bundle_report, restnetc.reports.cka_plot, restnetc.reports.sweep_outputs
from tests.test_report_plots import POINTS
restnetc.reports.bundle_report.plot_accuracy(POINTS, "params", sys.argv[1])
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""


def test_plotting_leaves_the_callers_matplotlib_backend_and_figures_alone(tmp_path: Path) -> None:
    """Issue 19: importing the Python API and the report modules and writing a plot neither switches the
    caller's matplotlib backend (an ``matplotlib.use("Agg")`` on import did) nor leaves a figure in pyplot's
    registry. The PNG is still written, by the figure's own canvas."""
    path = tmp_path / "plot.png"
    ran = subprocess.run(
        [sys.executable, "-c", _CALLER_BACKEND, str(path)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.split() == ["svg", "0"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

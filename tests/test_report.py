"""What the bundle says to a person: the recommendation per backend and budget, and the report that opens
with it, rendered in a real headless Chromium."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from restnetc.bundle.manifest import BundleError, read_manifest
from restnetc.bundle.recommend import figure, recommend
from restnetc.config.target import Budget, CostSource, Metric

VIEWPORT = (1280, 800)
"""The first screen the report must answer on: a laptop browser window, in CSS pixels."""

PROBE = """<!doctype html><html><body>
<iframe id="report" src="report.html" style="width:%dpx;height:%dpx;border:0"></iframe>
<script>
document.getElementById("report").addEventListener("load", () => {
  const doc = document.getElementById("report").contentDocument;
  const section = doc.getElementById("what-to-ship");
  const items = section ? [...section.querySelectorAll("li")] : [];
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({
    items: items.map((li) => ({text: li.innerText, bottom: li.getBoundingClientRect().bottom})),
  });
  document.body.appendChild(out);
});
</script></body></html>
"""


def test_each_recommendation_is_the_most_accurate_artifact_within_its_budget(
    built: tuple[Path, Path, Path, Path],
) -> None:
    manifest = read_manifest(built[0])
    recommendations = recommend(manifest)
    backends = {a.backend for a in manifest.artifacts}
    budgets = [Budget.model_validate(b) for b in manifest.target["budgets"]]  # type: ignore[attr-defined]
    assert len(recommendations) == len(backends) * (len(budgets) + 1)
    for r in recommendations:
        assert r.artifact is not None and r.artifact.backend == r.backend
        rivals = [a for a in manifest.artifacts if a.backend == r.backend]
        if r.budget is not None:  # a params budget here: the counted figure, whatever the cost source
            assert r.artifact.params <= r.budget.limit
            rivals = [a for a in rivals if a.params <= r.budget.limit]
        best = max(a.accuracy.validation for a in rivals)
        assert r.artifact.accuracy.validation == best
        assert r.artifact.params == min(a.params for a in rivals if a.accuracy.validation == best), "ties: cheaper"
        assert f"ship {r.artifact.id} ({r.artifact.file})" in r.sentence()
    tight = manifest.model_copy(update={"target": {**manifest.target, "budgets": [{"params": "1K"}]}})
    starved = [r for r in recommend(tight) if r.budget is not None]
    assert starved and all(r.artifact is None and "no shipped artifact fits" in r.sentence() for r in starved)
    broken = manifest.model_copy(update={"target": {**manifest.target, "budgets": [{"params": "lots"}]}})
    with pytest.raises(BundleError, match=r"^manifest.json: target: not a valid target"):
        recommend(broken)


def test_a_measured_budget_is_held_to_the_figure_of_the_targets_cost_source(
    built: tuple[Path, Path, Path, Path],
) -> None:
    """The same rule as the manifest's budget_check: host figures for ``source: host``, the cost table's
    prediction for ``predicted``, the device's own figure for ``device`` once ingested."""
    artifact = read_manifest(built[0]).artifacts[0]
    latency = artifact.latency_ms.model_copy(update={"predicted": 123.0})
    device = latency.model_copy(update={"device": None})
    a = artifact.model_copy(update={"latency_ms": device})
    assert figure(Metric.LATENCY_MS, a, CostSource.HOST) == artifact.latency_ms.host.median
    assert figure(Metric.LATENCY_MS, a, CostSource.PREDICTED) == 123.0
    assert figure(Metric.LATENCY_MS, a, CostSource.DEVICE) == 123.0, "no device log yet: the prediction"
    assert figure(Metric.PARAMS, a, CostSource.DEVICE) == artifact.params


def _render(report: str, directory: Path) -> tuple[dict[str, list[dict[str, object]]], list[str]]:
    """``report`` rendered by headless Chromium at ``VIEWPORT``: what the probe read from the page, and the
    console lines the page logged."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium missing: scripts/bootstrap.sh installs it (apt package chromium)"
    (directory / "report.html").write_text(report)
    (directory / "probe.html").write_text(PROBE % VIEWPORT)
    run = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={directory / 'profile'}",
            "--allow-file-access-from-files",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
            "--dump-dom",
            (directory / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    probe = json.loads(html.unescape(run.stdout.split('<pre id="probe">', 1)[1].split("</pre>", 1)[0]))
    return probe, [line for line in run.stderr.splitlines() if ":CONSOLE" in line and "report.html" in line]


def test_the_report_opens_with_what_to_ship_in_a_real_browser(
    built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """Headless Chromium renders report.html at 1280x800: every recommendation is on the first screen, in the
    manifest's words, and the page logs nothing to the console. The same page with a script error logs it:
    the console check can fail."""
    report = (built[0] / "report.html").read_text()
    probe, console = _render(report, tmp_path)
    expected = [r.sentence() for r in recommend(read_manifest(built[0]))]
    assert [item["text"] for item in probe["items"]] == expected
    assert all(item["bottom"] <= VIEWPORT[1] for item in probe["items"]), probe["items"]  # type: ignore[operator]
    assert console == [], console
    (tmp_path / "broken").mkdir()
    _, console = _render(report.replace("</body>", "<script>undefined_function()</script></body>"), tmp_path / "broken")
    assert any("undefined_function" in line for line in console), "a script error must show in the console lines"

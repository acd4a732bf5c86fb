"""What the bundle says to a person: the recommendation per backend and budget, and the report that opens
with it, rendered in a real headless Chromium."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from restnetc.bundle.manifest import Artifact, BundleError, Manifest, read_manifest, write_manifest
from restnetc.bundle.recommend import Recommendation, cheapest_first, climb, figure, ladder_confidence, recommend
from restnetc.bundle.runtime_index import memory_need, write_index
from restnetc.config.target import Budget, CostSource, Metric
from restnetc.evaluation import more_accurate, more_accurate_than
from restnetc.runtime import Bundle

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


def _fitting(manifest: Manifest, r: Recommendation) -> list[Artifact]:
    """``r``'s backend's artifacts within its budget (a params budget here), cheapest first."""
    rivals = [a for a in manifest.artifacts if a.backend == r.backend]
    return sorted((a for a in rivals if r.budget is None or a.params <= r.budget.limit), key=lambda a: a.params)


def test_each_recommendation_climbs_from_the_cheapest_only_on_a_confident_lead(
    built: tuple[Path, Path, Path, Path],
) -> None:
    """The rule on the tiny build: the shipped artifact fits; no costlier fitting one is more accurate with the
    ladder's confidence on validation (the climb stopped there); one above the cheapest got there by beating a
    cheaper one with confidence; a passed-over leader is named with its lead."""
    manifest = read_manifest(built[0])
    recommendations = recommend(manifest)
    backends = {a.backend for a in manifest.artifacts}
    budgets = [Budget.model_validate(b) for b in manifest.target["budgets"]]  # type: ignore[attr-defined]
    assert len(recommendations) == len(backends) * (len(budgets) + 1)
    for r in recommendations:
        assert r.artifact is not None and r.artifact.backend == r.backend
        fitting = _fitting(manifest, r)
        assert r.artifact in fitting
        flags = r.artifact.accuracy.validation_flags
        costlier = [a.accuracy.validation_flags for a in fitting if a.params > r.artifact.params]
        assert not any(more_accurate_than(flags, costlier)), "a costlier artifact leads with confidence"
        if r.artifact is not fitting[0]:
            cheaper = [a for a in fitting if a.params < r.artifact.params]
            assert any(more_accurate(flags, a.accuracy.validation_flags) for a in cheaper), "climbed on noise"
        leader = max(fitting, key=lambda a: a.accuracy.validation)
        assert (r.passed_over is None) == (leader.accuracy.validation <= r.artifact.accuracy.validation)
        assert f"ship {r.artifact.id} ({r.artifact.file})" in r.sentence()
    tight = manifest.model_copy(update={"target": {**manifest.target, "budgets": [{"params": "1K"}]}})
    starved = [r for r in recommend(tight) if r.budget is not None]
    assert starved and all(r.artifact is None and "no shipped artifact fits" in r.sentence() for r in starved)
    broken = manifest.model_copy(update={"target": {**manifest.target, "budgets": [{"params": "lots"}]}})
    with pytest.raises(BundleError, match=r"^manifest.json: target: not a valid target"):
        recommend(broken)


def _scored(artifact: Artifact, right: int) -> Artifact:
    """``artifact`` right on the first ``right`` validation images and wrong on the rest."""
    n = artifact.accuracy.validation_images
    accuracy = artifact.accuracy.model_copy(
        update={"validation_correct": "1" * right + "0" * (n - right), "validation": round(100 * right / n, 3)}
    )
    return artifact.model_copy(update={"accuracy": accuracy})


@pytest.mark.parametrize(("lead", "climbs"), [(3, False), (20, True)])
def test_a_costlier_artifact_ships_only_when_it_leads_with_confidence(
    built: tuple[Path, Path, Path, Path], lead: int, climbs: bool
) -> None:
    """With no limit, one backend's cheapest artifact right on 40 validation images and every costlier one on
    ``40 + lead`` (the same images and more): 3 images ahead is noise (McNemar p = 0.25), the cheapest ships and
    the leader is named as passed over; 20 ahead is not (p < 1e-5), the cheapest costlier one ships."""
    manifest = read_manifest(built[0])
    backend = manifest.artifacts[0].backend
    ours = sorted((a for a in manifest.artifacts if a.backend == backend), key=lambda a: a.params)
    assert len(ours) >= 2 and ours[0].params < ours[1].params and ours[0].accuracy.validation_images >= 60
    rescored = {a.id: _scored(a, 40 if a is ours[0] else 40 + lead) for a in ours}
    edited = manifest.model_copy(update={"artifacts": [rescored.get(a.id, a) for a in manifest.artifacts]})
    (unlimited,) = [r for r in recommend(edited) if r.backend == backend and r.budget is None]
    assert unlimited.artifact is not None and unlimited.artifact.id == (ours[1] if climbs else ours[0]).id
    if climbs:
        assert unlimited.passed_over is None
    else:
        assert unlimited.passed_over is not None and unlimited.passed_over[0].id == ours[1].id
        assert f"Costlier {ours[1].id} leads it on validation by" in unlimited.sentence()


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


def test_the_shim_runs_what_the_ship_rule_recommends_for_its_memory(
    built: tuple[Path, Path, Path, Path], tmp_path: Path
) -> None:
    """The index's ranks make the C core's selection (through ``restnetc.runtime``, no headroom or hysteresis)
    what ``recommend``'s rule ships under each memory budget, at every artifact's own need. Checked on the tiny
    bundle, then on a copy where the rule and the accuracy figures disagree: every artifact alike on validation
    (so the rule keeps the cheapest) and the cheapest the least accurate on test, where choosing by accuracy
    alone (an index without ranks) would never run it while anything else fits."""
    manifest = read_manifest(built[0])
    shutil.copytree(built[0], tmp_path / "disagree")
    for artifact in manifest.artifacts:
        (tmp_path / "disagree" / artifact.file).chmod(0o644)
    cheapest = {
        backend: min(
            (a for a in manifest.artifacts if a.backend == backend), key=lambda a: cheapest_first(memory_need(a), a)
        )
        for backend in {a.backend for a in manifest.artifacts}
    }
    rescored = [_scored(a, 40) for a in manifest.artifacts]
    rescored = [
        a.model_copy(update={"accuracy": a.accuracy.model_copy(update={"artifact": 1.0})})
        if a.id == cheapest[a.backend].id
        else a
        for a in rescored
    ]
    disagreeing = manifest.model_copy(update={"artifacts": rescored})
    write_manifest(tmp_path / "disagree", disagreeing)
    write_index(tmp_path / "disagree", disagreeing)
    for directory, m in ((built[0], manifest), (tmp_path / "disagree", disagreeing)):
        confidence = ladder_confidence(m)
        with Bundle(directory) as bundle:
            for backend in cheapest:
                ours = sorted(
                    (a for a in m.artifacts if a.backend == backend), key=lambda a: cheapest_first(memory_need(a), a)
                )
                for limit in {memory_need(a) for a in ours}:
                    expected = climb([a for a in ours if memory_need(a) <= limit], confidence)
                    chosen = bundle.select(backend, limit, headroom_mb=0, hysteresis=0).chosen
                    assert expected is not None and chosen is not None and chosen.id == expected.id, (backend, limit)
    with Bundle(tmp_path / "disagree") as bundle:
        for backend, artifact in cheapest.items():
            chosen = bundle.select(backend, 1 << 40, headroom_mb=0, hysteresis=0).chosen
            assert chosen is not None and chosen.id == artifact.id and chosen.rank == 1

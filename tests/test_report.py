"""What the bundle says to a person: the recommendation per backend and budget, and the report that opens
with it, rendered in a real headless Chromium."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from restnetc.bundle.manifest import AllInt8, Artifact, BundleError, Dropped, Manifest, read_manifest, write_manifest
from restnetc.bundle.recommend import Recommendation, figure, recommend, ship_path
from restnetc.bundle.runtime_index import memory_need, ship_ranks, write_index
from restnetc.config.target import Budget, CostSource, LadderPolicy, Metric
from restnetc.evaluation import more_accurate, more_accurate_than
from restnetc.reports.bundle_report import _dropped_row, _row
from restnetc.runtime import Bundle
from tests.fakes import fake_artifact, write_fake_bundle

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
        assert f"{ours[1].id}, after it in the ship order, leads it on validation by" in unlimited.sentence()


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
    what ``recommend`` ships under a host memory budget at each step of the rule's walk along memory. Checked on
    the tiny bundle, then on a copy where the rule and the test figures disagree: every artifact alike on
    validation (so the rule keeps the first it walks to) and that one the least accurate on test, where choosing by
    accuracy alone (an index without ranks) would never run it while anything else fits."""
    manifest = read_manifest(built[0])
    shutil.copytree(built[0], tmp_path / "disagree")
    policy, backends = LadderPolicy(), sorted({a.backend for a in manifest.artifacts})

    def walk(m: Manifest, backend: str) -> list[tuple[float, Artifact]]:
        ours = [a for a in m.artifacts if a.backend == backend]
        return ship_path(ours, memory_need, Metric.MEMORY_MB, policy)

    rescored = manifest.model_copy(update={"artifacts": [_scored(a, 40) for a in manifest.artifacts]})
    first = {b: walk(rescored, b)[0][1].id for b in backends}
    worst = [
        a.model_copy(update={"accuracy": a.accuracy.model_copy(update={"artifact": 1.0})})
        if a.id == first[a.backend]
        else a
        for a in rescored.artifacts
    ]
    disagreeing = manifest.model_copy(update={"artifacts": worst})
    write_manifest(tmp_path / "disagree", disagreeing)
    write_index(tmp_path / "disagree", disagreeing)
    for directory, m in ((built[0], manifest), (tmp_path / "disagree", disagreeing)):
        with Bundle(directory) as bundle:
            for backend in backends:
                budgets = [{"metric": "memory_mb", "limit": limit} for limit, _ in walk(m, backend)]
                target = {**m.target, "budgets": budgets, "costs": {"source": "host"}}
                for r in recommend(m.model_copy(update={"target": target})):
                    if r.backend != backend or r.budget is None:
                        continue
                    chosen = bundle.select(backend, int(r.budget.limit), headroom_mb=0, hysteresis=0).chosen
                    assert (chosen and chosen.id) == (r.artifact and r.artifact.id), r.sentence()
    with Bundle(tmp_path / "disagree") as bundle:
        for backend, artifact_id in first.items():
            chosen = bundle.select(backend, 1 << 40, headroom_mb=0, hysteresis=0).chosen
            assert chosen is not None and chosen.id == artifact_id and chosen.rank == 1


def _fake(index: int, memory_mib: int, correct: str) -> Artifact:
    """A fake LiteRT artifact needing ``memory_mib`` MiB with ``correct`` as its validation results."""
    artifact = fake_artifact(index, f"litert/a{index}.tflite", b"x")
    host = artifact.memory_bytes.host.model_copy(update={"peak_delta": memory_mib << 20})
    share = 100 * correct.count("1") / len(correct)
    figures = {"validation_images": len(correct), "validation_correct": correct, "validation": share}
    memory = artifact.memory_bytes.model_copy(update={"host": host})
    accuracy = artifact.accuracy.model_copy(update=figures)
    return artifact.model_copy(update={"memory_bytes": memory, "accuracy": accuracy})


def test_more_room_never_ships_what_the_rule_climbed_past(tmp_path: Path) -> None:
    """A (10 MiB) and B (12 MiB) agree on 50 of 100 validation images; A alone is right on 8 more, B on 20
    (McNemar p = 0.036). C (14 MiB) is right exactly where A is. Within 12 MiB the rule moves from A to B. A fresh
    climb within 14 MiB would test B and C against A as one Holm family, where p = 0.036 is not enough (0.025
    needed), and ship A again; the walk goes on from B instead, so one order serves every limit: B ships from 12
    MiB up, and the ranks are A 1, B 2, C 0."""
    a_flags = "1" * 58 + "0" * 42
    b_flags = "1" * 50 + "0" * 8 + "1" * 20 + "0" * 22
    a, b, c = _fake(0, 10, a_flags), _fake(1, 12, b_flags), _fake(2, 14, a_flags)
    path = ship_path([c, a, b], memory_need, Metric.MEMORY_MB, LadderPolicy())
    assert [(limit >> 20, shipped.id) for limit, shipped in path] == [(10, "a0"), (12, "a1"), (14, "a1")]
    manifest = write_fake_bundle(tmp_path, {"litert/a0.tflite": b"x"}).model_copy(update={"artifacts": [a, b, c]})
    assert ship_ranks(manifest) == {("a0", "litert"): 1, ("a1", "litert"): 2, ("a2", "litert"): 0}
    rivals = [b.accuracy.validation_flags, c.accuracy.validation_flags]
    assert more_accurate_than(a.accuracy.validation_flags, rivals) == [None, None], "the family must lose B's win"


def test_both_tables_say_what_was_kept_in_float_and_what_all_int8_scored() -> None:
    """A shipped or dropped artifact keeping float units shows them with the all-int8 artifact's figures in its
    table row; an all-int8 one shows a dash. Fails when either table loses the column or shows the wrong figures."""
    plain = fake_artifact(0, "litert/a0.tflite", b"a0")
    accuracy = plain.accuracy.model_copy(update={"all_int8": AllInt8(validation=80.0, test=79.5)})
    kept = plain.model_copy(update={"float_modules": ["stem", "head"], "accuracy": accuracy})
    fields = ("id", "role", "backend", "params", "macs", "float_modules", "accuracy", "pareto")
    dropped = Dropped(**{name: getattr(kept, name) for name in fields}, latency_ms=1.0, memory_bytes=1)
    said = "<td>stem, head (all-int8: 80.00% validation, 79.50% test)</td>"
    assert said in _row(kept) and said in _dropped_row(dropped)
    assert "<td>-</td><td>" + html.escape(plain.policy) in _row(plain)

"""``report.html`` (self-contained) and its PNGs: CKA heatmap, accuracy vs params / MACs / latency / memory,
predicted vs measured cost (when the target has a cost table), the variants table with figures per source, and
the artifacts the ladder policy left out, with why."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from restnetc.bundle.manifest import Accuracy, Artifact, Dropped, Manifest, Pareto
from restnetc.bundle.recommend import recommend
from restnetc.config.units import format_count
from restnetc.reports.cka_plot import plot_cka
from restnetc.results import SearchResult


@dataclass(frozen=True)
class _Axis:
    label: str
    scale: float  # plotted value = cost * scale
    count: bool  # ticks as counts (3.4M)


AXES: Mapping[str, _Axis] = {
    "params": _Axis("parameters", 1.0, True),
    "macs": _Axis("multiply-accumulates per image", 1.0, True),
    "latency": _Axis("host latency, median ms", 1.0, False),
    "memory": _Axis("host peak memory to load and run once, MB", 1e-6, False),
}
"""Cost axes of the accuracy plots, by the key of ``PlotPoint.costs``: params and MACs are counts, latency is
the host median in ms, memory the host peak delta in bytes (plotted in MB)."""

_MARKERS = {"executorch": "o", "litert": "s"}
_GREY = "0.6"


@dataclass(frozen=True)
class PlotPoint:
    """One artifact (shipped or dropped) as the accuracy plots draw it.

    ``costs`` has one figure per key of ``AXES``; ``accuracy`` and ``interval`` (95% Wilson) are the
    artifact's top-1 % on the test split, ``eager`` the eager fp32 model's; ``front`` is its Pareto standing
    among its backend's artifacts (decided on validation); ``dropped`` means the ladder policy left it out.
    """

    id: str
    backend: str
    role: str
    costs: Mapping[str, float]
    accuracy: float
    interval: tuple[float, float]
    eager: float
    front: bool
    dropped: bool


def plot_points(manifest: Manifest) -> list[PlotPoint]:
    """Every artifact of ``manifest``, shipped then dropped, as plot points."""

    def point(entry: Artifact | Dropped, latency: float, memory: float, dropped: bool) -> PlotPoint:
        return PlotPoint(
            id=entry.id,
            backend=entry.backend,
            role=entry.role,
            costs={"params": entry.params, "macs": entry.macs, "latency": latency, "memory": memory},
            accuracy=entry.accuracy.artifact,
            interval=entry.accuracy.interval,
            eager=entry.accuracy.eager_fp32,
            front=entry.pareto.front,
            dropped=dropped,
        )

    shipped = [point(a, a.latency_ms.host.median, a.memory_bytes.host.peak_delta, False) for a in manifest.artifacts]
    return shipped + [point(d, d.latency_ms, d.memory_bytes, True) for d in manifest.dropped]


def _label(p: PlotPoint) -> str:
    return p.id.removeprefix("parent-") if p.role == "parent" else p.id


def plot_accuracy(points: Sequence[PlotPoint], axis: str, path: Path) -> dict[str, list[str]]:
    """Write ``path``: test accuracy against the ``axis`` cost (a key of ``AXES``), one subplot per backend.

    Every point has its 95% interval as an error bar and its id beside it; the Pareto front is a step line
    through its members in order of cost; dominated points are grey, dropped ones hollow; the eager fp32
    figure of each point is a small grey x. Returns the ids on each backend's front line, in drawing order
    (cheapest first). ValueError for an unknown axis or no point.
    """
    if axis not in AXES:
        raise ValueError(f"unknown cost axis {axis!r}, expected one of: {', '.join(AXES)}")
    if not points:
        raise ValueError("no artifact to plot")
    spec = AXES[axis]
    backends = sorted({p.backend for p in points})
    figure = Figure(figsize=(5.6 * len(backends), 4.6), dpi=110)
    grid = figure.subplots(1, len(backends), sharey=True, squeeze=False)
    fronts: dict[str, list[str]] = {}
    for index, (backend, axes) in enumerate(zip(backends, grid[0], strict=True)):
        color = f"C{index}"
        marker = _MARKERS.get(backend, "^")
        group = [p for p in points if p.backend == backend]
        axes.scatter(
            [p.costs[axis] * spec.scale for p in group], [p.eager for p in group], marker="x", s=14, color=_GREY
        )
        front = sorted((p for p in group if p.front), key=lambda p: (p.costs[axis], p.accuracy, p.id))
        fronts[backend] = [p.id for p in front]
        axes.plot(
            [p.costs[axis] * spec.scale for p in front],
            [p.accuracy for p in front],
            drawstyle="steps-post",
            color=color,
            linewidth=1.2,
            gid="pareto-front",
        )
        for p in group:
            x = p.costs[axis] * spec.scale
            tint = color if p.front else _GREY
            low, high = p.interval
            axes.errorbar(
                [x],
                [p.accuracy],
                yerr=[[max(p.accuracy - low, 0.0)], [max(high - p.accuracy, 0.0)]],
                fmt=marker,
                markersize=6,
                color=tint,
                markerfacecolor="none" if p.dropped else tint,
                elinewidth=0.9,
                capsize=2,
                zorder=3,
            )
            axes.annotate(
                _label(p),
                (x, p.accuracy),
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=6.5,
                color="black" if p.front else "0.45",
                fontweight="bold" if p.role == "parent" else "normal",
            )
        axes.set_title(backend, fontsize=10)
        axes.set_xlabel(spec.label)
        axes.grid(alpha=0.3)
        if spec.count:
            axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_count(value)))
        axes.legend(handles=_legend(group, color, marker), fontsize=7, loc="lower right")
    grid[0][0].set_ylabel("top-1 accuracy on test, % (95% interval)")
    figure.suptitle(
        "points: top-1 on test with 95% interval; line: the Pareto front, decided on validation over the budgeted"
        " metrics",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path)
    return fronts


def _legend(group: Iterable[PlotPoint], color: str, marker: str) -> list[Line2D]:
    """Legend entries for the kinds of point present in ``group``."""
    kinds = {(p.front, p.dropped) for p in group}
    handles = [Line2D([], [], color=color, drawstyle="steps-post", label="Pareto front")]
    styles = {
        (True, False): ("front", color, color),
        (False, False): ("dominated, shipped", _GREY, _GREY),
        (False, True): ("dominated, left out", _GREY, "none"),
        (True, True): ("front, left out", color, "none"),
    }
    for kind, (label, tint, fill) in styles.items():
        if kind in kinds:
            handles.append(Line2D([], [], linestyle="", marker=marker, color=tint, markerfacecolor=fill, label=label))
    handles.append(Line2D([], [], linestyle="", marker="x", color=_GREY, markersize=4, label="eager fp32"))
    return handles


def _plot_predicted(manifest: Manifest, path: Path) -> bool:
    """Predicted vs measured latency and memory of the artifacts the cost table predicts; False if none."""
    predicted = [a for a in manifest.artifacts if a.latency_ms.predicted is not None]
    if not predicted:
        return False
    figure = Figure(figsize=(10, 4.2), dpi=110)
    left, right = figure.subplots(1, 2)
    latency = [(a.latency_ms.host.median, a.latency_ms.predicted or 0.0) for a in predicted]
    memory = [(a.memory_bytes.host.peak_delta / 1e6, (a.memory_bytes.predicted or 0) / 1e6) for a in predicted]
    for axes, label, points in ((left, "latency, ms", latency), (right, "peak memory, MB", memory)):
        xs, ys = [x for x, _ in points], [y for _, y in points]
        axes.scatter(xs, ys)
        for a, x, y in zip(predicted, xs, ys, strict=True):
            axes.annotate(a.id, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
        low, high = min(xs + ys), max(xs + ys)
        axes.plot([low, high], [low, high], linestyle="--", color="grey", label="prediction = measurement")
        axes.set_xlabel(f"measured on this host, {label}")
        axes.set_ylabel(f"predicted by the cost table, {label}")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    return True


def _or_dash(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def _budget(a: Artifact) -> str:
    check = a.budget_check
    if check is None:
        return "-"
    return f"{'met' if check.met else 'NOT MET'} ({check.source} {check.figure:.4g})"


def _test_accuracy(accuracy: Accuracy) -> str:
    """``81.2% [79.4, 82.9]``: top-1 on test and its 95% Wilson interval."""
    low, high = accuracy.interval
    return f"{accuracy.artifact:.1f}% [{low:.1f}, {high:.1f}]"


def _float_units(entry: Artifact | Dropped) -> str:
    """The units the accuracy policy kept in float and what the all-int8 artifact they replaced scored, e.g.
    ``stem, blocks.3 (all-int8: 79.80% validation, 79.45% test)``; ``-`` for an all-int8 or fp32 artifact."""
    kept = entry.accuracy.all_int8
    if kept is None:
        return "-"
    return f"{', '.join(entry.float_modules)} (all-int8: {kept.validation:.2f}% validation, {kept.test:.2f}% test)"


def _standing(pareto: Pareto) -> str:
    return "front" if pareto.front else f"dominated by {pareto.dominated_by or '?'}"


def _cells(cells: Sequence[str | tuple[str, str | None]]) -> str:
    """A table row; a ``(text, title)`` cell shows ``title`` on hover."""
    out = []
    for cell in cells:
        text, title = cell if isinstance(cell, tuple) else (cell, None)
        attribute = f' title="{html.escape(title)}"' if title else ""
        out.append(f"<td{attribute}>{html.escape(text)}</td>")
    return "<tr>" + "".join(out) + "</tr>"


def _row(a: Artifact) -> str:
    return _cells(
        [
            a.id,
            a.backend,
            a.quantization,
            a.budget or "parent",
            f"{a.stitch.front_block} -> {a.stitch.back_block}" if a.stitch else "-",
            format_count(a.params),
            format_count(a.macs),
            f"{a.bytes / 1e6:.2f} MB",
            f"{a.accuracy.eager_fp32:.2f}",
            _test_accuracy(a.accuracy),
            f"{a.accuracy.validation:.2f}",
            (_standing(a.pareto), a.pareto.reason),
            f"{a.agreement:.1f}",
            f"{a.latency_ms.host.median:.2f}",
            _or_dash(a.latency_ms.predicted),
            _or_dash(a.latency_ms.device.inference if a.latency_ms.device else None),
            f"{a.memory_bytes.host.peak_delta / 1e6:.1f}",
            _or_dash(a.memory_bytes.predicted, 1e6, 1),
            _or_dash(a.memory_bytes.device.peak if a.memory_bytes.device else None, 1e6, 1),
            _budget(a),
            f"{a.delegation.delegated_ops}/{a.delegation.delegated_ops + sum(a.delegation.fallback_ops.values())}",
            _float_units(a),
            a.policy,
        ]
    )


_HEADERS = (
    "id",
    "backend",
    "format",
    "budget",
    "stitch i -> j",
    "params",
    "MACs",
    "size",
    "eager top-1 %",
    "test top-1 [95% interval]",
    "validation top-1 %",
    "Pareto (validation)",
    "agreement %",
    "latency ms host",
    "predicted",
    "device",
    "peak MB host",
    "predicted",
    "device",
    "measured budget",
    "delegated ops",
    "kept in float",
    "accuracy policy",
)


def _dropped_row(d: Dropped) -> str:
    return _cells(
        [
            d.id,
            d.backend,
            format_count(d.params),
            format_count(d.macs),
            f"{d.latency_ms:.2f}",
            f"{d.memory_bytes / 1e6:.1f}",
            f"{d.accuracy.eager_fp32:.2f}",
            _test_accuracy(d.accuracy),
            f"{d.accuracy.validation:.2f}",
            _float_units(d),
            d.pareto.dominated_by or "-",
            d.pareto.reason or "-",
        ]
    )


_DROPPED_HEADERS = (
    "id",
    "backend",
    "params",
    "MACs",
    "latency ms host",
    "peak MB host",
    "eager top-1 %",
    "test top-1 [95% interval]",
    "validation top-1 %",
    "kept in float",
    "dominated by",
    "why",
)


def _table(headers: Sequence[str], rows: str) -> str:
    return f"<table><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in headers)}</tr>{rows}</table>"


def _int8_note(manifest: Manifest) -> str:
    """How the int8 artifacts were quantized (``Artifact.int8``), one sentence per backend; empty for fp32."""
    recipes = {a.backend: a.int8 for a in manifest.artifacts if a.int8 is not None}
    if not recipes:
        return ""
    sentences = [
        f"{html.escape(backend)}: {html.escape(r.quantizer)}, observers calibrated on {r.calibration_images} "
        f"training images, each layer's bias corrected on the first {r.bias_correction_images}"
        for backend, r in recipes.items()
    ]
    shared = any(a.int8.donor_modules for a in manifest.artifacts if a.int8 is not None)
    donors = (
        " A variant's back part, and its stitch's output, take its back parent's observers and corrected "
        "biases, so that the blocks they share keep the parent's bytes."
        if shared
        else ""
    )
    tuned = {a.id: a.int8.stitch_tuning for a in manifest.artifacts if a.int8 is not None and a.int8.stitch_tuning}
    tuning = "".join(
        f" {html.escape(rung)}: stitch trained under {html.escape(t.simulated_with)} int8 simulation, simulated "
        f"validation top-1 {t.validation_plain:.2f}% -> {t.validation_tuned:.2f}%, "
        f"{'shipped' if t.kept else 'not kept'}."
        for rung, t in sorted(tuned.items())
    )
    return (
        f"<p>Int8 after training (PT2E static quantization, int8 per-channel weights and per-tensor activations): "
        f"{'; '.join(sentences)}.{donors}{tuning}</p>"
    )


def _confidence(manifest: Manifest) -> str:
    """The ladder policy's confidence as a p-value threshold, e.g. ``0.05``, from the manifest's target."""
    ladder = manifest.target.get("ladder")
    confidence = ladder.get("confidence") if isinstance(ladder, dict) else None
    return f"{1 - confidence:.3g}" if isinstance(confidence, int | float) else "1 - confidence"


def _shipped_dominated(manifest: Manifest) -> str:
    """The reasons of dominated artifacts the ladder policy shipped anyway (``warn``, ``keep``), as a list."""
    items = "".join(
        f"<li><b>{html.escape(a.id)}</b> ({html.escape(a.backend)}): {html.escape(a.pareto.reason or '-')}</li>"
        for a in manifest.artifacts
        if not a.pareto.front
    )
    return f"<p>Shipped although dominated:</p><ul>{items}</ul>" if items else ""


def _left_out(manifest: Manifest) -> str:
    if not manifest.dropped:
        return "<h2>Left out</h2><p>No artifact was left out of the bundle.</p>"
    rows = "".join(_dropped_row(d) for d in sorted(manifest.dropped, key=lambda d: (d.backend, d.params)))
    return (
        "<h2>Left out</h2><p>Built, verified and measured, but dominated, so the ladder policy left them out of "
        f"the bundle.</p>{_table(_DROPPED_HEADERS, rows)}"
    )


def _selection(search: SearchResult) -> str:
    """Per rung: the selector, the chosen point's CKA and selector ranks, its shortlist; the parents' note."""
    note = (
        f"<p><b>LADDER WARNING</b>: {html.escape(search.parents_note)}</p>" if search.parents_note is not None else ""
    )
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(v.budget.describe())}</td><td>{v.candidate.front_block} &rarr; {v.candidate.back_block}</td>"
        f"<td>{html.escape(v.selection.selector)}</td><td>{v.selection.cka_rank}</td><td>{v.selection.selector_rank}</td>"
        f"<td>{html.escape(', '.join(f'{i}->{j}: {score:.4g}' for i, j, score in v.selection.shortlist))}</td>"
        f"<td>{v.scores.validation:.2f}</td><td>{html.escape(v.selection.dominated or '-')}</td>"
        "</tr>"
        for v in search.variants
    )
    dropped = "".join(f"<li>{html.escape(d.budget.describe())}: {html.escape(d.reason)}</li>" for d in search.dropped)
    headers = (
        "budget",
        "stitch",
        "selector",
        "CKA rank",
        "selector rank",
        "shortlist (score)",
        "validation %",
        "dominated",
    )
    return f"<h2>Stitch selection</h2>{note}{_table(headers, rows)}" + (
        f"<p>Budgets left without a rung (every candidate dominated):</p><ul>{dropped}</ul>" if dropped else ""
    )


def _what_to_ship(manifest: Manifest) -> str:
    """The report's opening: the artifact to ship per backend and budget, in words (``recommend``'s rule)."""
    items = "".join(f"<li>{html.escape(r.sentence())}</li>" for r in recommend(manifest))
    return (
        '<section id="what-to-ship"><h2>What to ship</h2>'
        "<p>For each backend and budget: the cheapest shipped artifact within the budget, unless a costlier one "
        "is more accurate on validation with the ladder's confidence. The runtime shim switches among a "
        "backend's shipped artifacts by the memory available on the device, by the same rule (the index's ship "
        f"ranks).</p><ul>{items}</ul></section>"
    )


def write_bundle_report(manifest: Manifest, search: SearchResult, directory: Path) -> None:
    """Write the PNGs and a self-contained ``report.html`` (images embedded) into ``directory``."""
    points = [(v.candidate.front_block, v.candidate.back_block, v.budget.describe()) for v in search.variants]
    plot_cka(search.cka, search.front.name, search.back.name, points, directory / "cka.png")
    images = ["cka.png"]
    artifacts = plot_points(manifest)
    for axis in AXES:
        name = f"accuracy_vs_{axis}.png"
        plot_accuracy(artifacts, axis, directory / name)
        images.append(name)
    if _plot_predicted(manifest, directory / "predicted_vs_measured.png"):
        images.append("predicted_vs_measured.png")
    figures = "".join(
        f'<figure><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((directory / name).read_bytes()).decode()}"><figcaption>{name}</figcaption></figure>'
        for name in images
    )
    rows = "".join(_row(a) for a in sorted(manifest.artifacts, key=lambda a: (a.backend, a.params)))
    target = manifest.target
    host = manifest.artifacts[0].latency_ms.host
    splits = manifest.splits
    title = f"restnetc bundle: {html.escape(str(target['name']))}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child{{text-align:left}}
td[title]{{text-decoration:underline dotted}}figure{{display:inline-block;margin:8px}}img{{max-width:900px}}
</style></head><body>
<h1>{title}</h1>
{_what_to_ship(manifest)}
<h2>The ladder</h2>
<p>{html.escape(str(target.get("description", "")))}. Project <b>{html.escape(str(manifest.project["name"]))}</b>:
{html.escape(search.front.name)} (front) stitched into {html.escape(search.back.name)} (back).</p>
<p>Three disjoint splits: {splits.train.images} training images (heads, stitches), {splits.validation.images}
validation images (every decision: accuracy policy, dominance) and {splits.test.images} test images, which only
report. Accuracy is top-1 on test with its 95% Wilson interval: the range that accounts for having only
{splits.test.images} images, so rungs whose intervals overlap may not really differ. An artifact is
<i>dominated</i> when another of its backend (parents included) costs no more on every budgeted metric and is
more accurate on validation with confidence: exact two-sided McNemar test on the same images, p below
{_confidence(manifest)}, with its rivals that cost no more as one family (Holm). The Pareto front is the rest:
the rungs worth shipping.</p>
{_int8_note(manifest)}
<p>Latency is the host median ({host.runs} interleaved runs, {host.threads} threads);
memory is the peak resident memory to load and run once, in a fresh process; "predicted" figures come from
the target's cost table (its backend only), "device" ones from <code>restnetc bench ingest</code>.
Created {manifest.created}.</p>
<section id="plots">{figures}</section>
<section id="artifacts">{_table(_HEADERS, rows)}</section>
{_shipped_dominated(manifest)}
{_selection(search)}
{_left_out(manifest)}
<p>Tools: {html.escape(", ".join(f"{k} {v}" for k, v in manifest.tools.items()))}</p>
</body></html>
"""
    (directory / "report.html").write_text(page, encoding="utf-8")

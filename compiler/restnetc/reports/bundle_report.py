"""``report.html`` (self-contained) and its PNGs: CKA heatmap, accuracy vs params / MACs / latency, predicted vs
measured cost (when the target has a cost table), and the variants table with figures per source."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from restnetc.bundle.manifest import Artifact, Manifest
from restnetc.config.units import format_count
from restnetc.pipeline.search import SearchResult
from restnetc.reports.cka_plot import plot_cka

_AXES = {
    "params": ("parameters", lambda a: a.params),
    "macs": ("multiply-accumulates per image", lambda a: a.macs),
    "latency": ("host latency, median ms", lambda a: a.latency_ms.host.median),
}
_MARKERS = {"executorch": "o", "litert": "s"}


def _plot_accuracy(manifest: Manifest, axis: str, path: Path) -> None:
    label, value = _AXES[axis]
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for backend in sorted({a.backend for a in manifest.artifacts}):
        points = sorted((value(a), a) for a in manifest.artifacts if a.backend == backend)
        xs = [x for x, _ in points]
        axes.plot(
            xs,
            [a.accuracy.artifact for _, a in points],
            marker=_MARKERS.get(backend, "^"),
            label=f"{backend} {points[0][1].quantization}",
        )
        for x, a in points:
            if a.role == "parent":
                axes.annotate(
                    a.id.removeprefix("parent-"),
                    (x, a.accuracy.artifact),
                    xytext=(4, 4),
                    textcoords="offset points",
                    fontsize=7,
                )
    eager = sorted({(value(a), a.accuracy.eager_fp32) for a in manifest.artifacts})
    axes.plot([x for x, _ in eager], [y for _, y in eager], linestyle="--", color="grey", label="eager fp32")
    axes.set_xlabel(label)
    axes.set_ylabel("top-1 accuracy, %")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _plot_predicted(manifest: Manifest, path: Path) -> bool:
    """Predicted vs measured latency and memory of the artifacts the cost table predicts; False if none."""
    predicted = [a for a in manifest.artifacts if a.latency_ms.predicted is not None]
    if not predicted:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
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
    plt.close(figure)
    return True


def _or_dash(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value / scale:.{digits}f}"


def _budget(a: Artifact) -> str:
    check = a.budget_check
    if check is None:
        return "-"
    return f"{'met' if check.met else 'NOT MET'} ({check.source} {check.figure:.4g})"


def _row(a: Artifact) -> str:
    cells = [
        a.id,
        a.backend,
        a.quantization,
        a.budget or "parent",
        f"{a.stitch.front_block} -> {a.stitch.back_block}" if a.stitch else "-",
        format_count(a.params),
        format_count(a.macs),
        f"{a.bytes / 1e6:.2f} MB",
        f"{a.accuracy.eager_fp32:.2f}",
        f"{a.accuracy.artifact:.2f}",
        f"{a.agreement:.1f}",
        f"{a.latency_ms.host.median:.2f}",
        _or_dash(a.latency_ms.predicted),
        _or_dash(a.latency_ms.device.inference if a.latency_ms.device else None),
        f"{a.memory_bytes.host.peak_delta / 1e6:.1f}",
        _or_dash(a.memory_bytes.predicted, 1e6, 1),
        _or_dash(a.memory_bytes.device.peak if a.memory_bytes.device else None, 1e6, 1),
        _budget(a),
        f"{a.delegation.delegated_ops}/{a.delegation.delegated_ops + sum(a.delegation.fallback_ops.values())}",
        a.policy,
    ]
    return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"


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
    "artifact top-1 %",
    "agreement %",
    "latency ms host",
    "predicted",
    "device",
    "peak MB host",
    "predicted",
    "device",
    "measured budget",
    "delegated ops",
    "accuracy policy",
)


def write_bundle_report(manifest: Manifest, search: SearchResult, directory: Path) -> None:
    """Write the PNGs and a self-contained ``report.html`` (images embedded) into ``directory``."""
    points = [(v.candidate.front_block, v.candidate.back_block, v.budget.describe()) for v in search.variants]
    plot_cka(search.cka, search.front.name, search.back.name, points, directory / "cka.png")
    images = ["cka.png"]
    for axis in _AXES:
        name = f"accuracy_vs_{axis}.png"
        _plot_accuracy(manifest, axis, directory / name)
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
    title = f"restnetc bundle: {html.escape(str(target['name']))}"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}td:first-child{{text-align:left}}
figure{{display:inline-block;margin:8px}}img{{max-width:640px}}</style></head><body>
<h1>{title}</h1>
<p>{html.escape(str(target.get("description", "")))}. Project <b>{html.escape(str(manifest.project["name"]))}</b>:
{html.escape(search.front.name)} (front) stitched into {html.escape(search.back.name)} (back).
Accuracy is top-1 on {manifest.artifacts[0].accuracy.images} held-out images; latency is the host median
({host.runs} interleaved runs, {host.threads} threads);
memory is the peak resident memory to load and run once, in a fresh process; "predicted" figures come from
the target's cost table (its backend only), "device" ones from <code>restnetc bench ingest</code>.
Created {manifest.created}.</p>
<table><tr>{"".join(f"<th>{h}</th>" for h in _HEADERS)}</tr>{rows}</table>
{figures}
<p>Tools: {html.escape(", ".join(f"{k} {v}" for k, v in manifest.tools.items()))}</p>
</body></html>
"""
    (directory / "report.html").write_text(page, encoding="utf-8")

"""The bundle as a terminal table (``build`` and ``inspect``)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from restnetc.backends.base import ops_run
from restnetc.bundle.manifest import Manifest
from restnetc.config.units import format_count


def bundle_table(manifest: Manifest) -> Table:
    """One row per artifact: sizes, accuracy eager vs artifact, host latency and memory (``program MB``: of that,
    what the open file holds, shared by every entry point of a ladder file)."""
    table = Table(title=f"bundle for {manifest.target['name']} (created {manifest.created})")
    headers = (
        "id",
        "backend",
        "params",
        "MACs",
        "size MB",
        "eager %",
        "artifact %",
        "agree %",
        "ms",
        "mem MB",
        "program MB",
        "policy",
    )
    for header in headers:
        table.add_column(header, justify="left" if header in ("id", "backend", "policy") else "right")
    for a in sorted(manifest.artifacts, key=lambda a: (a.backend, a.params)):
        table.add_row(
            a.id,
            f"{a.backend} {a.quantization}",
            format_count(a.params),
            format_count(a.macs),
            f"{a.bytes / 1e6:.2f}",
            f"{a.accuracy.eager_fp32:.2f}",
            f"{a.accuracy.artifact:.2f}",
            f"{a.agreement:.1f}",
            f"{a.latency_ms.host.median:.2f}",
            f"{a.memory_bytes.host.peak_delta / 1e6:.1f}",
            "-" if a.memory_bytes.host.program is None else f"{a.memory_bytes.host.program / 1e6:.1f}",
            a.policy,
        )
    return table


def operator_table(manifest: Manifest, operators: Mapping[tuple[str, str], Mapping[str, int]]) -> Table:
    """One row per artifact: the operators its entry point calls, by name, most frequent first, from
    ``operators`` keyed by ``(id, backend)`` (as ``Backend.operators`` counts them)."""
    table = Table(title="operators per entry point, read from each file")
    for header in ("id", "backend", "entry", "ops", "by name"):
        table.add_column(header, justify="right" if header == "ops" else "left")
    for a in sorted(manifest.artifacts, key=lambda a: (a.backend, a.params)):
        counts = operators[(a.id, a.backend)]
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        table.add_row(
            a.id,
            f"{a.backend} {a.quantization}",
            a.entry_point,
            str(ops_run(counts)),
            ", ".join(f"{name} {count}" for name, count in ranked),
        )
    return table

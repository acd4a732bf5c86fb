"""CI size-regression check: artifact sizes against a committed baseline, with a markdown verdict table.

Sizes are measured on disk (``integrity.verify_files``), never taken from the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from restnetc.atomic import write_text_atomic
from restnetc.errors import RestnetcError

BASELINE_VERSION = 1


@dataclass(frozen=True)
class SizeRow:
    """One artifact's comparison."""

    file: str
    baseline: int | None
    now: int | None
    verdict: str

    @property
    def failed(self) -> bool:
        return self.verdict != "ok"


def read_baseline(path: Path) -> dict[str, int]:
    """``{artifact file: bytes}`` from a baseline file written by ``--update``."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RestnetcError(f"{path}: baseline not found (create it with --update)") from None
    except (OSError, ValueError) as exc:
        raise RestnetcError(f"{path}: unreadable baseline: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != BASELINE_VERSION:
        raise RestnetcError(f"{path}: schema_version: expected {BASELINE_VERSION}")
    sizes = data.get("artifacts")
    if not isinstance(sizes, dict) or not all(isinstance(v, int) for v in sizes.values()):
        raise RestnetcError(f"{path}: artifacts: expected a mapping of file name to byte count")
    return sizes


def write_baseline(path: Path, target: str, sizes: dict[str, int]) -> None:
    """Record ``{artifact file: bytes}`` of the bundle for ``target`` as the baseline, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"schema_version": BASELINE_VERSION, "target": target, "artifacts": dict(sorted(sizes.items()))}
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def compare(
    baseline: dict[str, int], now: dict[str, int], percent: float | None, slack_bytes: int | None
) -> list[SizeRow]:
    """A row per artifact file on either side (``now``: sizes on disk); growth beyond the tolerance or a
    missing artifact fails."""
    rows = []
    for file in sorted(set(baseline) | set(now)):
        before, after = baseline.get(file), now.get(file)
        if before is None:
            verdict = "FAIL: not in baseline"
        elif after is None:
            verdict = "FAIL: missing from bundle"
        else:
            allowed = before * (percent or 0.0) / 100 if slack_bytes is None else slack_bytes
            verdict = "ok" if after - before <= allowed else "FAIL: grew past tolerance"
        rows.append(SizeRow(file, before, after, verdict))
    return rows


def markdown_table(rows: list[SizeRow]) -> str:
    """The comparison as a markdown table (artifact, baseline, now, delta, verdict)."""
    lines = ["| artifact | baseline | now | delta | verdict |", "|---|---:|---:|---:|---|"]
    for row in rows:
        if row.baseline is not None and row.now is not None:
            delta = row.now - row.baseline
            change = f"{delta:+d} ({100 * delta / row.baseline:+.2f}%)" if row.baseline else f"{delta:+d}"
        else:
            change = "-"
        shown = [str(v) if v is not None else "-" for v in (row.baseline, row.now)]
        lines.append(f"| {row.file} | {shown[0]} | {shown[1]} | {change} | {row.verdict} |")
    return "\n".join(lines)

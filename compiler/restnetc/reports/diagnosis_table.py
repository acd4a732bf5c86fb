"""``restnetc diagnose`` as terminal tables: per rung and backend, each unit kept in float alone."""

from __future__ import annotations

from rich.table import Table

from restnetc.bundle.diagnosis import Diagnosis, Simulated
from restnetc.config.units import format_count


def diagnosis_table(rung: str, diagnosis: Diagnosis) -> Table:
    """The all-int8 row, then every unit, the one whose float copy recovers the most SQNR first, with the top-1
    and SQNR gained against all-int8."""
    base = diagnosis.all_int8
    table = Table(
        title=f"{rung} {diagnosis.backend} int8 on {diagnosis.images} validation images "
        f"(eager fp32 {diagnosis.eager_top1:.2f}%)"
    )
    for header in ("kept in float", "params", "top-1 %", "gain (points)", "logit SQNR dB", "gain (dB)"):
        table.add_column(header, justify="left" if header == "kept in float" else "right")

    def row(simulated: Simulated, label: str) -> None:
        table.add_row(
            label,
            format_count(simulated.params),
            f"{simulated.top1:.2f}",
            f"{simulated.top1 - base.top1:+.2f}",
            f"{simulated.sqnr_db:.1f}",
            f"{simulated.sqnr_db - base.sqnr_db:+.1f}",
        )

    row(base, "(nothing: all int8)")
    for simulated in diagnosis.ranked():
        row(simulated, ", ".join(simulated.float_units))
    return table

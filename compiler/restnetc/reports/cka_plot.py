"""The CKA heatmap with the chosen stitch points marked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def plot_cka(
    cka: np.ndarray,
    front_name: str,
    back_name: str,
    points: Sequence[tuple[int, int, str]],
    path: Path,
) -> None:
    """Write a PNG heatmap of ``cka`` (rows: front blocks, columns: back blocks); ``points`` are (i, j, label)."""
    rows, cols = cka.shape
    figure = Figure(figsize=(1.2 + 0.38 * cols, 1.0 + 0.32 * rows), dpi=120)
    axes = figure.subplots()
    image = axes.imshow(cka, cmap="viridis", vmin=0.0, vmax=1.0, origin="upper", aspect="auto")
    figure.colorbar(image, ax=axes, label="linear CKA")
    for i, j, label in points:
        axes.scatter([j], [i], s=160, facecolors="none", edgecolors="red", linewidths=2)
        axes.annotate(label, (j, i), xytext=(6, -6), textcoords="offset points", color="white", fontsize=7)
    axes.set_xticks(range(cols))
    axes.set_yticks(range(rows))
    axes.tick_params(labelsize=7)
    axes.set_xlabel(f"{back_name} block (back)")
    axes.set_ylabel(f"{front_name} block (front)")
    axes.set_title(f"CKA: {front_name} vs {back_name}")
    figure.tight_layout()
    figure.savefig(path)

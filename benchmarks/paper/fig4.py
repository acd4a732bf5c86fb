"""Figure 4 analog: does CKA at the stitch point predict the stitched model's accuracy?

``restnetc sweep`` stitches each pair at a grid of points regardless of any budget, fine-tunes every
stitching layer the same way, and correlates CKA with the final accuracy (Pearson and Spearman), over all
points and among the points of each front block (where only the back model's resume point varies).

Usage: ``.venv/bin/python benchmarks/paper/fig4.py [--pairs vgg19-vgg11 ...]``. Writes
``benchmarks/results/fig4.{md,json,png}``; pairs not named keep their results from the previous run.
"""

from __future__ import annotations

import json
from typing import Any

import common
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STRIDES = {"vgg19-vgg11": 2, "resnet34-vgg11": 2, "deits-deitti": 1}
"""The pairs swept (``common.PAIRS`` slugs), each with its grid stride: every how many blocks a stitch point."""


def sweep(a: str, b: str, every: int) -> dict[str, Any]:
    work = common.WORK / "fig4" / f"{a}-{b}"
    project_file = common.write_yaml(work / "project.yaml", common.project(f"{a}-{b}", a, b))
    common.restnetc("sweep", "--project", project_file, "--every", str(every), "--out", work / "sweep")
    return dict(json.loads((work / "sweep" / "sweep.json").read_text()))


def main() -> None:
    args = common.pairs_parser(__doc__, list(STRIDES)).parse_args()
    stored = common.previous_results("fig4") or {}
    pairs = [common.pair(slug) for slug in STRIDES]
    results = {
        p.title: sweep(p.a, p.b, STRIDES[p.slug]) if p.slug in args.pairs else stored[p.title]
        for p in pairs
        if p.slug in args.pairs or p.title in stored
    }
    write(results)


def write(results: dict[str, dict[str, Any]]) -> None:
    """fig4.md, fig4.json and fig4.png from each pair's sweep.json document, by title."""
    header = ["pair", "stitch points", "Pearson r", "p", "Spearman rho", "p", "within-front Spearman (blocks)",
              "accuracy range %"]  # fmt: skip
    rows = []
    for title, document in results.items():
        r, tuned = document["correlation"], [p["accuracy_finetuned"] for p in document["points"]]
        within = r["within_front"]
        rows.append(
            [title, len(document["points"]), f"{r['pearson']:.3f}", f"{r['pearson_p']:.2g}",
             f"{r['spearman']:.3f}", f"{r['spearman_p']:.2g}",
             f"{within['mean_spearman']:.2f} ({len(within['spearman_by_front_block'])})",
             f"{min(tuned):.1f}-{max(tuned):.1f}"]
        )  # fmt: skip
    text = "# Figure 4 analog: CKA at the stitch point vs accuracy (Fashion-MNIST)\n\n" + common.markdown_table(
        header, rows
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "fig4.md").write_text(text)
    (common.RESULTS / "fig4.json").write_text(json.dumps(results, indent=2) + "\n")
    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.8), squeeze=False)
    for axis, (title, document) in zip(axes[0], results.items(), strict=True):
        points = document["points"]
        dots = axis.scatter(
            [p["cka"] for p in points],
            [p["accuracy_finetuned"] for p in points],
            c=[p["front_block"] for p in points],
            cmap="viridis",
            s=18,
        )
        figure.colorbar(dots, ax=axis, label="front block")
        r = document["correlation"]
        axis.set_title(f"{title}\nPearson {r['pearson']:.2f}, Spearman {r['spearman']:.2f}", fontsize=10)
        axis.set_xlabel("CKA at the stitch point")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 % after fine-tuning")
    figure.tight_layout()
    figure.savefig(common.RESULTS / "fig4.png", dpi=120)


if __name__ == "__main__":
    main()

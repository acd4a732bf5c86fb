"""Table IV analog: what to fine-tune. The stitching layer only (restnetc's default, the paper's choice), plus
the back part, plus the front part, or the whole stitched model; same stitch points and epochs.

For VGG19->VGG11 (the paper's pair for this table), ``restnetc search`` builds the same four-rung ladder with
each ``finetune.scope`` and reports accuracy, trainable parameters and fine-tuning wall time per variant.

Usage: ``.venv/bin/python benchmarks/paper/table4.py``. Writes ``benchmarks/results/table4.{md,json}``.
"""

from __future__ import annotations

import json
from typing import Any

import common

PAIR = ("VGG19 -> VGG11", "zoo_vgg19", "zoo_vgg11")
SCOPES = ("stitch", "stitch+back", "stitch+front", "all")


def main() -> None:
    title, a, b = PAIR
    budgets = common.ladder_budgets(*common.parent_sizes(a, b))
    rows: list[dict[str, Any]] = []
    for scope in SCOPES:
        slug = f"{a}-{b}-{scope.replace('+', '-')}"
        base = common.project(slug, a, b)
        project = {**base, "finetune": {**base["finetune"], "scope": scope}}
        found = common.search(common.WORK / "table4" / slug, project, common.target(slug, budgets))
        rows += [
            {
                "scope": scope,
                "budget": v["budget"]["text"],
                "cut": f"{v['front']['block']}->{v['back']['resumes_at_block']}",
                "params": v["params"],
                "trainable": v["trainable_params"],
                "seconds": v["finetune_seconds"],
                "accuracy": v["accuracy"]["after_finetune"],
            }
            for v in found["variants"]
        ]
    header = ["budget", "cut i->j", "fine-tuned", "trainable", "share of params", "tune s", "top-1 %"]
    table = [
        [r["budget"], r["cut"], r["scope"], common.millions(r["trainable"]),
         f"{100 * r['trainable'] / r['params']:.1f}%", f"{r['seconds']:.1f}", f"{r['accuracy']:.2f}"]
        for r in sorted(rows, key=lambda r: (r["budget"], SCOPES.index(r["scope"])))
    ]  # fmt: skip
    gaps = []
    for stitch_only in (r for r in rows if r["scope"] == "stitch"):
        best = max(r["accuracy"] for r in rows if r["budget"] == stitch_only["budget"])
        gaps.append(best - stitch_only["accuracy"])
    text = (
        f"# Table IV analog: fine-tuning scope on {title} (Fashion-MNIST)\n\n"
        + common.markdown_table(header, table)
        + f"\nStitching layer only is within {max(gaps):.2f} points of the best scope at every budget "
        f"(mean gap {sum(gaps) / len(gaps):.2f}).\n"
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "table4.md").write_text(text)
    (common.RESULTS / "table4.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

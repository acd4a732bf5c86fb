"""Table IV analog: what to fine-tune. The stitching layer only (restnetc's default, the paper's choice), plus
the back part, plus the front part, or the whole stitched model; same stitch points and epochs.

For VGG19->VGG11 (the paper's pair for this table), ``restnetc search`` builds the same four-rung ladder with
each ``finetune.scope`` and reports accuracy, trainable parameters and fine-tuning wall time per variant.
It uses a fresh stage cache, so every time in the table is measured in the same run; run it on an idle machine.

Usage: ``.venv/bin/python benchmarks/paper/table4.py``. Writes ``benchmarks/results/table4.{md,json}``.
"""

from __future__ import annotations

import json
import shutil

import common

PAIR = common.pair("vgg19-vgg11")
SCOPES = ("stitch", "stitch+back", "stitch+front", "all")


def main() -> None:
    a, b = PAIR.a, PAIR.b
    cache = common.WORK / "table4" / "cache"  # fresh: every fine-tuning time is measured in this run
    shutil.rmtree(cache, ignore_errors=True)
    rows = [
        {"scope": scope, **row}
        for scope in SCOPES
        for row in common.ladder_variants("table4", a, b, scope, cache=cache, scope=scope)
    ]
    header = ["budget", "cut i->j", "fine-tuned", "trainable", "share of params", "tune s", "top-1 %"]
    table = [
        [r["budget"], r["cut"], r["scope"], common.millions(r["trainable"]),
         f"{100 * r['trainable'] / r['params']:.1f}%", f"{r['seconds']:.1f}", f"{r['after']:.2f}"]
        for r in sorted(rows, key=lambda r: (r["limit"], SCOPES.index(r["scope"])))
    ]  # fmt: skip
    gaps = []
    for stitch_only in (r for r in rows if r["scope"] == "stitch"):
        best = max(r["after"] for r in rows if r["budget"] == stitch_only["budget"])
        gaps.append(best - stitch_only["after"])
    text = (
        f"# Table IV analog: fine-tuning scope on {PAIR.title} (Fashion-MNIST)\n\n"
        + common.markdown_table(header, table)
        + f"\nStitching layer only is within {max(gaps):.2f} points of the best scope at every budget "
        f"(mean gap {sum(gaps) / len(gaps):.2f}).\n"
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "table4.md").write_text(text)
    (common.RESULTS / "table4.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

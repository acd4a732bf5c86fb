"""Least-squares vs random initialisation of the stitching layer, with the same fine-tuning budget.

restnetc fits the stitching layer by least squares on front/back activations before fine-tuning; the paper
starts from a trained-from-scratch layer. For VGG19->VGG11 and DeiT-S->DeiT-Ti, ``restnetc search`` builds the
same four-rung ladder with ``finetune.init`` set to ``least-squares`` and to ``random``, and reports each
variant's accuracy right after initialisation and after the (identical) fine-tuning.

Usage: ``.venv/bin/python benchmarks/paper/stitch_init.py [--pairs vgg19-vgg11 ...]``. Writes
``benchmarks/results/stitch_init.{md,json}``; pairs not named keep their rows from the previous run.
"""

from __future__ import annotations

import json
from typing import Any

import common

SLUGS = ("vgg19-vgg11", "deits-deitti")
"""The ``common.PAIRS`` this experiment runs."""
INITS = ("least-squares", "random")


def run_pair(title: str, a: str, b: str) -> list[dict[str, Any]]:
    return [
        {"pair": title, "init": init, **row}
        for init in INITS
        for row in common.ladder_variants("stitch_init", a, b, init, init=init)
    ]


def main() -> None:
    args = common.pairs_parser(__doc__, SLUGS).parse_args()
    rerun = [(p.title, p.a, p.b) for p in map(common.pair, args.pairs)]
    kept = common.kept_rows("stitch_init", {title for title, _, _ in rerun})
    rows = kept + [row for title, a, b in rerun for row in run_pair(title, a, b)]
    header = ["pair", "budget", "cut i->j", "init", "trainable", "steps", "top-1 % at init", "top-1 % tuned"]
    table = [
        [r["pair"], r["budget"], r["cut"], r["init"], r["trainable"], r["steps"], f"{r['before']:.2f}",
         f"{r['after']:.2f}"]
        for r in sorted(rows, key=lambda r: (r["pair"], r["limit"], r["init"]))
    ]  # fmt: skip
    pairs = _paired(rows, "least-squares")
    gain = sum(lstsq["after"] - random["after"] for lstsq, random in pairs) / len(pairs)
    text = (
        "# Stitching-layer initialisation: least squares vs random (Fashion-MNIST)\n\n"
        + common.markdown_table(header, table)
        + f"\nMean gain of least squares over random after fine-tuning: {gain:+.2f} points.\n"
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "stitch_init.md").write_text(text)
    (common.RESULTS / "stitch_init.json").write_text(json.dumps(rows, indent=2) + "\n")


def _paired(rows: list[dict[str, Any]], init: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(row with ``init``, row with the other init) for every pair and budget."""
    other = {(r["pair"], r["budget"]): r for r in rows if r["init"] != init}
    return [(r, other[(r["pair"], r["budget"])]) for r in rows if r["init"] == init]


if __name__ == "__main__":
    main()

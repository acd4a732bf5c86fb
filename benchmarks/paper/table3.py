"""Table III analog: Slow-to-Fast (larger model in front) vs Fast-to-Slow (smaller in front) at matched budgets.

For ResNet34/VGG11 (the paper's pair), VGG19/VGG11 and DeiT-S/DeiT-Ti, ``restnetc search`` builds the same
four-rung params ladder in both orders; each rung is the highest-CKA stitch point in its budget band,
fine-tuned the same way.

Usage: ``.venv/bin/python benchmarks/paper/table3.py [--pairs deits-deitti ...]``. Writes
``benchmarks/results/table3.{md,json}``; pairs not named keep their rows from the previous run.
"""

from __future__ import annotations

import json
from typing import Any

import common

SLUGS = ("resnet34-vgg11", "vgg19-vgg11", "deits-deitti")
"""The ``common.PAIRS`` this experiment runs both ways: each pair's ``a`` is the larger model."""
ORDERS = ("slow-to-fast", "fast-to-slow")


def run_pair(title: str, large: str, small: str) -> list[dict[str, Any]]:
    return [
        {"pair": title, "order": order, **row}
        for order in ORDERS
        for row in common.ladder_variants("table3", large, small, order, order=order)
    ]


def main() -> None:
    args = common.pairs_parser(__doc__, SLUGS).parse_args()
    rerun = [(p.title.replace(" -> ", " / "), p.a, p.b) for p in map(common.pair, args.pairs)]
    kept = common.kept_rows("table3", {title for title, _, _ in rerun})
    write(kept + [row for title, large, small in rerun for row in run_pair(title, large, small)])


def write(rows: list[dict[str, Any]]) -> None:
    """table3.md (rows by pair and budget, wins by pair) and table3.json."""
    header = ["pair", "budget", "order", "front", "back", "CKA", "params", "MACs", "top-1 %"]
    table = [
        [r["pair"], r["budget"], r["order"], r["front"], r["back"], f"{r['cka']:.3f}", common.millions(r["params"]),
         common.millions(r["macs"]), f"{r['after']:.2f}"]
        for r in sorted(rows, key=lambda r: (r["pair"], r["limit"], r["order"]))
    ]  # fmt: skip
    titles = sorted({r["pair"] for r in rows})
    wins = {(title, order): 0 for title in titles for order in ORDERS}
    for (title, _), group in _by_budget(rows).items():
        if len(group) == len(ORDERS):
            wins[(title, max(group, key=lambda r: r["after"])["order"])] += 1
    summary = [
        f"- {title}: " + ", ".join(f"{order} more accurate at {wins[(title, order)]} budgets" for order in ORDERS)
        for title in titles
    ]
    text = (
        "# Table III analog: stitching order at matched params budgets (Fashion-MNIST)\n\n"
        + common.markdown_table(header, table)
        + "\n"
        + "\n".join(summary)
        + "\n"
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "table3.md").write_text(text)
    (common.RESULTS / "table3.json").write_text(json.dumps(rows, indent=2) + "\n")


def _by_budget(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["pair"], row["budget"]), []).append(row)
    return groups


if __name__ == "__main__":
    main()

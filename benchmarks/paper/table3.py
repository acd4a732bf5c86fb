"""Table III analog: Slow-to-Fast (larger model in front) vs Fast-to-Slow (smaller in front) at matched budgets.

For ResNet34/VGG11 (the paper's pair) and VGG19/VGG11, ``restnetc search`` builds the same four-rung params
ladder in both orders; each rung is the highest-CKA stitch point in its budget band, fine-tuned the same way.

Usage: ``.venv/bin/python benchmarks/paper/table3.py``. Writes ``benchmarks/results/table3.{md,json}``.
"""

from __future__ import annotations

import json
from typing import Any

import common

PAIRS = (("ResNet34 / VGG11", "zoo_resnet34", "zoo_vgg11"), ("VGG19 / VGG11", "zoo_vgg19", "zoo_vgg11"))
ORDERS = ("slow-to-fast", "fast-to-slow")


def run_pair(title: str, large: str, small: str) -> list[dict[str, Any]]:
    return [
        {"pair": title, "order": order, **row}
        for order in ORDERS
        for row in common.ladder_variants("table3", large, small, order, order=order)
    ]


def main() -> None:
    rows = [row for title, large, small in PAIRS for row in run_pair(title, large, small)]
    header = ["pair", "budget", "order", "front", "back", "CKA", "params", "MACs", "top-1 %"]
    table = [
        [r["pair"], r["budget"], r["order"], r["front"], r["back"], f"{r['cka']:.3f}", common.millions(r["params"]),
         common.millions(r["macs"]), f"{r['after']:.2f}"]
        for r in sorted(rows, key=lambda r: (r["pair"], r["limit"], r["order"]))
    ]  # fmt: skip
    wins = {order: 0 for order in ORDERS}
    for group in _by_budget(rows).values():
        if len(group) == len(ORDERS):
            wins[max(group, key=lambda r: r["after"])["order"]] += 1
    summary = ", ".join(f"{order} more accurate at {count} budgets" for order, count in wins.items())
    text = (
        "# Table III analog: stitching order at matched params budgets (Fashion-MNIST)\n\n"
        + common.markdown_table(header, table)
        + f"\n{summary}.\n"
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

"""Stitch selection compared: CKA only (the paper's rule), KL and measured, at equal budgets, per model pair.

For each pair (the built-in demo and the zoo pairs of ``benchmarks/paper``), a four-rung params ladder evenly
spaced between the parents is searched once per configuration (``CONFIGS``: each ``search.selector``, and
measured selection with shortlists of 2, 3 and 5), with ``ladder.dominated: keep`` so that every
configuration fills every rung. Parents and the CKA matrix are computed once per pair into a base cache; each
configuration starts from a copy of it, so its search time counts only its own work (screening, KL,
fine-tuning). Per rung: the chosen point, its CKA and selector ranks, validation and test top-1 (95% Wilson
interval), and the paired test difference against the CKA choice (95% interval, exact McNemar p).

Usage: ``.venv/bin/python benchmarks/selection_benchmark.py [--pairs demo vgg19-vgg11 ...] [--configs ...]
[--validation-images N] [--test-images N]`` (held-out sizes over the projects' own; each pair records its own).
Writes ``benchmarks/results/selection.{json,md}``; pairs and configurations not named keep their rows from the
previous run (the CKA reference is always run again: each comparison is paired on one run's images).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.results import SearchResult

RESULTS = Path(__file__).parent / "results"
CONFIGS: dict[str, dict[str, Any]] = {
    "cka": {"selector": "cka"},
    "kl": {"selector": "kl"},
    "measured": {"selector": "measured"},
    "measured-k2": {"selector": "measured", "shortlist": 2},
    "measured-k5": {"selector": "measured", "shortlist": 5},
}
"""Each configuration's ``search`` section over the project's; ``cka`` is the reference of every comparison."""


def _rows(pair: str, config: str, result: SearchResult, reference: SearchResult | None) -> list[dict[str, Any]]:
    rows = []
    for k, variant in enumerate(result.variants):
        row: dict[str, Any] = {
            "pair": pair,
            "selector": config,
            **common.variant_row(variant),
            "cka": round(variant.candidate.cka, 4),
            "cka_rank": variant.selection.cka_rank,
            "selector_rank": variant.selection.selector_rank,
            "params": variant.candidate.cost.params,
            "dominated": variant.selection.dominated is not None,
        }
        if reference is not None:
            row["vs_cka"] = common.paired(variant.scores.test_correct, reference.variants[k].scores.test_correct)
        rows.append(row)
    return rows


def run_pair(pair: str, configs: list[str], held_out: dict[str, int]) -> dict[str, Any]:
    project = common.pair_project(pair, held_out)
    arms = {c: project.model_copy(update={"search": project.search.model_copy(update=CONFIGS[c])}) for c in configs}
    results, seconds, parents = common.search_arms(project, arms, f"selection-{pair}")
    reference = results["cka"]
    rows = [row for c in configs for row in _rows(pair, c, results[c], None if c == "cka" else reference)]
    return {
        "pair": pair,
        "images": {"validation": project.data.validation_images, "test": project.data.test_images},
        "seconds": seconds,
        "parents": parents,
        "rows": rows,
        "search": {c: project.search.model_copy(update=CONFIGS[c]).model_dump(mode="json") for c in configs},
    }


def _markdown(pairs: list[dict[str, Any]]) -> str:
    lines = []
    for entry in pairs:
        lines += common.arms_heading(entry)
        header = [
            "configuration",
            "budget",
            "point",
            "CKA rank",
            "sel. rank",
            "val %",
            "test % [95%]",
            "vs CKA (points, 95%, p)",
        ]
        body = [
            [
                row["selector"],
                row["budget"],
                row["point"],
                row["cka_rank"],
                row["selector_rank"],
                row["validation"],
                common.test_cell(row),
                common.paired_cell(row.get("vs_cka")),
            ]
            for row in entry["rows"]
        ]
        lines.append(common.markdown_table(header, body))
        lines += common.mean_lines(entry["rows"], "selector", "vs_cka", "CKA")
        lines.append("")
    return "\n".join(lines)


def _reference(entry: dict[str, Any]) -> list[tuple[str, float]]:
    return [(r["point"], r["test"]) for r in entry["rows"] if r["selector"] == "cka"]


def _merged(old: dict[str, Any] | None, new: dict[str, Any], configs: list[str]) -> dict[str, Any]:
    """``new``, with ``old``'s rows, times and search settings of the configurations not run again.

    Kept rows were compared with the earlier CKA run, so they are kept only when this run's CKA choices and
    test figures are the earlier ones (the search is seeded); otherwise they are dropped, with a message.
    """
    if old is None:
        return new
    if _reference(old) != _reference(new) or old["parents"] != new["parents"] or old.get("images") != new["images"]:
        print(f"{new['pair']}: CKA reference or parents changed since the stored run; its other rows are dropped")
        return new
    search = old["search"]
    if "selector" in search:  # stored before settings were recorded per configuration
        search = {c: search | CONFIGS[c] for c in old["seconds"]}
    rows = [r for r in old["rows"] if r["selector"] not in configs]
    seconds = {c: t for c, t in old["seconds"].items() if c not in configs}
    searches = {c: s for c, s in search.items() if c not in configs}
    return {**new, "rows": rows + new["rows"], "seconds": seconds | new["seconds"], "search": searches | new["search"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    slugs = ["demo", *(pair.slug for pair in common.PAIRS)]
    parser.add_argument("--pairs", nargs="+", choices=slugs, default=slugs)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--validation-images", type=int, help="validation split size (default: the project's)")
    parser.add_argument("--test-images", type=int, help="test split size (default: the project's)")
    args = parser.parse_args()
    sizes = {"validation_images": args.validation_images, "test_images": args.test_images}
    held_out = {name: n for name, n in sizes.items() if n is not None}
    if "cka" not in args.configs:
        parser.error("--configs: cka is the reference of every comparison and must be included")
    stored = RESULTS / "selection.json"
    previous = json.loads(stored.read_text()) if stored.exists() else {"pairs": []}
    kept = {p["pair"]: p for p in previous["pairs"]}
    RESULTS.mkdir(exist_ok=True)
    for pair in args.pairs:  # written after each pair: a long run interrupted keeps what it measured
        kept[pair] = _merged(kept.get(pair), run_pair(pair, args.configs, held_out), args.configs)
        pairs = sorted(kept.values(), key=lambda p: slugs.index(p["pair"]))
        write_text_atomic(stored, json.dumps({"pairs": pairs}, indent=2) + "\n")
        write_text_atomic(RESULTS / "selection.md", _markdown(pairs))
    print(yaml.safe_dump({"wrote": [str(stored), str(RESULTS / "selection.md")]}))


if __name__ == "__main__":
    main()

"""What each stitch-training lever buys the rungs at fixed stitch points: more training images, more epochs under
validation stopping, distillation from the front parent (issue 14, "rungs trained to their potential").

Per pair (the built-in demo and the zoo pairs of ``benchmarks/paper``), a four-rung params ladder evenly spaced
between the parents is searched once per lever (``LEVERS``: the project as it is, then one setting changed) with
``search.selector: cka``, so every lever trains the same stitch points (CKA reads calibration images only) and
``ladder.dominated: keep``, so every lever fills every rung. Parents and the CKA matrix are computed once per pair
into a base cache; each lever starts from a copy of it, so its time counts only its own work (a lever that
changes the train split also recomputes what is keyed by it, CKA and the parents' scores included). A lever
that sets what the project already has changes nothing (the zoo projects do not distill, so ``no-distill`` is
their project as it is). Per rung: the
point, the epoch validation stopping kept, fine-tuning seconds, validation and test top-1 (95% Wilson interval),
and the paired test difference against the project as it is (95% interval, exact McNemar p). The validation
split chooses the kept epoch; the test split only reports.

Usage: ``.venv/bin/python benchmarks/stitch_training.py [--pairs demo ...] [--levers ...] [--test-images N]``.
Writes ``benchmarks/results/stitch_training.{json,md}`` (pairs not named keep their stored results).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).parent / "paper"))
import common

from restnetc.atomic import write_text_atomic
from restnetc.config.project import ProjectConfig
from restnetc.results import SearchResult

NAME = "stitch_training"
REFERENCE = "as-is"


@dataclass(frozen=True)
class Lever:
    """One change to how a project trains its stitches: a multiple of its train split, and fine-tuning settings
    over its own."""

    train_images_factor: int = 1
    finetune: dict[str, Any] = field(default_factory=dict)


LEVERS = {
    REFERENCE: Lever(),
    "no-distill": Lever(finetune={"distill": None}),
    "epochs-6": Lever(finetune={"epochs": 6}),
    "images-4x": Lever(train_images_factor=4),
}


def _levered(project: ProjectConfig, lever: str) -> ProjectConfig:
    """``project`` with ``lever``'s changes and CKA selection (the same stitch points for every lever)."""
    change = LEVERS[lever]
    data = project.data.model_copy(update={"train_images": project.data.train_images * change.train_images_factor})
    finetune = project.finetune.model_copy(update=change.finetune)
    search = project.search.model_copy(update={"selector": "cka"})
    return project.model_copy(update={"data": data, "finetune": finetune, "search": search})


def _rows(lever: str, result: SearchResult, reference: SearchResult | None) -> list[dict[str, Any]]:
    rows = []
    for k, variant in enumerate(result.variants):
        row: dict[str, Any] = {
            "lever": lever,
            **common.variant_row(variant),
            "best_epoch": variant.finetune_best_epoch,
            "finetune_seconds": round(variant.finetune_seconds, 1),
        }
        if reference is not None:
            same = reference.variants[k].candidate
            if (same.front_block, same.back_block) != (variant.candidate.front_block, variant.candidate.back_block):
                raise SystemExit(f"{lever}: rung {k} trained {row['point']}, not the reference's point (CKA moved)")
            row["vs_reference"] = common.paired(variant.scores.test_correct, reference.variants[k].scores.test_correct)
        rows.append(row)
    return rows


def run_pair(pair: str, levers: list[str], held_out: dict[str, int]) -> dict[str, Any]:
    project = common.pair_project(pair, held_out)
    arms = {lever: _levered(project, lever) for lever in levers}
    results, seconds, parents = common.search_arms(project, arms, f"{NAME}-{pair}")
    reference = results[REFERENCE]
    rows = [row for lever in levers for row in _rows(lever, results[lever], None if lever == REFERENCE else reference)]
    settings = {
        lever: {"train_images": arm.data.train_images, "finetune": arm.finetune.model_dump()}
        for lever, arm in arms.items()
    }
    return {
        "pair": pair,
        "images": {"validation": project.data.validation_images, "test": project.data.test_images},
        "seconds": seconds,
        "parents": parents,
        "settings": settings,
        "rows": rows,
    }


def _markdown(pairs: list[dict[str, Any]]) -> str:
    lines = []
    for entry in pairs:
        lines += common.arms_heading(entry)
        header = ["lever", "budget", "point", "kept epoch", "fine-tune s", "val %", "test % [95%]", "vs as-is"]
        body = [
            [
                row["lever"],
                row["budget"],
                row["point"],
                row["best_epoch"],
                row["finetune_seconds"],
                row["validation"],
                common.test_cell(row),
                common.paired_cell(row.get("vs_reference")),
            ]
            for row in entry["rows"]
        ]
        lines.append(common.markdown_table(header, body))
        lines += common.mean_lines(entry["rows"], "lever", "vs_reference", REFERENCE)
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    slugs = ["demo", *(pair.slug for pair in common.PAIRS)]
    parser = common.pairs_parser(__doc__, slugs)
    parser.set_defaults(pairs=["demo"])
    parser.add_argument("--levers", nargs="+", choices=list(LEVERS), default=list(LEVERS))
    parser.add_argument("--test-images", type=int, help="test split size (default: the project's)")
    args = parser.parse_args()
    if REFERENCE not in args.levers:
        parser.error(f"--levers: {REFERENCE} is the reference of every comparison and must be included")
    held_out = {} if args.test_images is None else {"test_images": args.test_images}
    stored = common.previous_results(NAME) or {"pairs": []}
    kept = {p["pair"]: p for p in stored["pairs"]}
    common.RESULTS.mkdir(exist_ok=True)
    for pair in args.pairs:  # written after each pair: a long run interrupted keeps what it measured
        kept[pair] = run_pair(pair, args.levers, held_out)
        pairs = sorted(kept.values(), key=lambda p: slugs.index(p["pair"]))
        write_text_atomic(common.RESULTS / f"{NAME}.json", json.dumps({"pairs": pairs}, indent=2) + "\n")
        write_text_atomic(common.RESULTS / f"{NAME}.md", _markdown(pairs))
    print(yaml.safe_dump({"wrote": [str(common.RESULTS / f"{NAME}.{ext}") for ext in ("json", "md")]}))


if __name__ == "__main__":
    main()

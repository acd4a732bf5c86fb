"""Files written by ``restnetc sweep``: sweep.json (every point, CKA-accuracy correlation) and sweep.png."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from scipy import stats

from restnetc.atomic import staged_files
from restnetc.reports.search_outputs import parent_document
from restnetc.results import SweepPoint, SweepResult

SWEEP_SCHEMA_VERSION = 2


def correlation(points: Sequence[SweepPoint]) -> dict[str, Any]:
    """How CKA relates to fine-tuned accuracy: Pearson and Spearman (with p-values) over all points, and
    Spearman among the points of each front block, with its mean.

    The paper's claim is about all points. Within one front block the front features are the same and only
    the block where the back model resumes varies; that is the choice CKA makes inside a budget band, and the
    within-front figures say how well it ranks those choices. Blocks with fewer than 3 points, or where CKA
    or accuracy does not vary, have no within-front figure.
    """
    cka = [p.candidate.cka for p in points]
    tuned = [p.accuracy_finetuned for p in points]
    if len(cka) < 3:
        raise ValueError("a correlation needs at least 3 stitch points; lower --every")
    pearson, spearman = stats.pearsonr(cka, tuned), stats.spearmanr(cka, tuned)
    by_front = _spearman_by_front_block(points)
    return {
        "pearson": round(float(pearson.statistic), 4),
        "pearson_p": float(pearson.pvalue),
        "spearman": round(float(spearman.statistic), 4),
        "spearman_p": float(spearman.pvalue),
        "within_front": {
            "mean_spearman": round(statistics.fmean(by_front.values()), 4) if by_front else None,
            "spearman_by_front_block": {str(block): r for block, r in by_front.items()},
        },
    }


def _spearman_by_front_block(points: Sequence[SweepPoint]) -> dict[int, float]:
    groups: dict[int, list[SweepPoint]] = defaultdict(list)
    for point in points:
        groups[point.candidate.front_block].append(point)
    ranks = {}
    for block, group in sorted(groups.items()):
        cka = [p.candidate.cka for p in group]
        tuned = [p.accuracy_finetuned for p in group]
        if len(group) >= 3 and len(set(cka)) > 1 and len(set(tuned)) > 1:
            ranks[block] = round(float(stats.spearmanr(cka, tuned).statistic), 4)
    return ranks


def sweep_document(result: SweepResult, r: dict[str, Any]) -> dict[str, Any]:
    """The content of sweep.json; ``r`` is the result's ``correlation``."""
    project = result.project
    return {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "project": project.name,
        "order": project.order.value,
        "every": result.every,
        "accuracy_convention": f"top-1 % on {project.data.test_images} held-out test images",
        "finetune": project.finetune.model_dump(mode="json"),
        "parents": {"front": parent_document(result.front), "back": parent_document(result.back)},
        "correlation": r,
        "points": [
            {
                "front_block": p.candidate.front_block,
                "back_block": p.candidate.back_block,
                "cka": round(p.candidate.cka, 6),
                "params": p.candidate.cost.params,
                "macs": p.candidate.cost.macs,
                "trainable_params": p.trainable_params,
                "accuracy_init": round(p.accuracy_init, 3),
                "accuracy_finetuned": round(p.accuracy_finetuned, 3),
                "accuracy_validation": round(p.accuracy_validation, 3),
                "finetune_seconds": round(p.finetune_seconds, 2),
            }
            for p in result.points
        ],
        "sweep_seconds": round(result.seconds, 1),
    }


def plot_sweep(result: SweepResult, r: dict[str, Any], path: Path) -> None:
    """CKA against fine-tuned accuracy, one dot per stitch point, coloured by the front block."""
    figure = Figure(figsize=(6, 4.5))
    axis = figure.subplots()
    dots = axis.scatter(
        [p.candidate.cka for p in result.points],
        [p.accuracy_finetuned for p in result.points],
        c=[p.candidate.front_block for p in result.points],
        cmap="viridis",
    )
    figure.colorbar(dots, ax=axis, label=f"front block ({result.front.name})")
    axis.set_title(
        f"{result.front.name} -> {result.back.name}: Pearson {r['pearson']:.2f}, Spearman {r['spearman']:.2f}"
    )
    axis.set_xlabel("CKA at the stitch point")
    axis.set_ylabel("top-1 % after fine-tuning")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def write_sweep_outputs(result: SweepResult, out_dir: Path) -> dict[str, Any]:
    """Write sweep.json and sweep.png (each file appears whole or not at all); returns the correlation."""
    r = correlation(result.points)
    with staged_files(out_dir) as staging:
        (staging / "sweep.json").write_text(json.dumps(sweep_document(result, r), indent=2) + "\n")
        plot_sweep(result, r, staging / "sweep.png")
    return r

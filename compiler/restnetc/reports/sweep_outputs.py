"""Files written by ``restnetc sweep``: sweep.json (every point, CKA-accuracy correlation) and sweep.png."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from scipy import stats

from restnetc.pipeline.search import SweepResult
from restnetc.reports.search_outputs import parent_document

SWEEP_SCHEMA_VERSION = 1


def correlation(result: SweepResult) -> dict[str, float]:
    """Pearson and Spearman correlation (with p-values) between CKA and fine-tuned accuracy over the points."""
    cka = [p.candidate.cka for p in result.points]
    tuned = [p.accuracy_finetuned for p in result.points]
    if len(cka) < 3:
        raise ValueError("a correlation needs at least 3 stitch points; lower --every")
    pearson, spearman = stats.pearsonr(cka, tuned), stats.spearmanr(cka, tuned)
    return {
        "pearson": round(float(pearson.statistic), 4),
        "pearson_p": float(pearson.pvalue),
        "spearman": round(float(spearman.statistic), 4),
        "spearman_p": float(spearman.pvalue),
    }


def sweep_document(result: SweepResult, r: dict[str, float]) -> dict[str, Any]:
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
                "finetune_seconds": round(p.finetune_seconds, 2),
            }
            for p in result.points
        ],
        "sweep_seconds": round(result.seconds, 1),
    }


def plot_sweep(result: SweepResult, r: dict[str, float], path: Path) -> None:
    """CKA against fine-tuned accuracy, one dot per stitch point, coloured by the front block."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    dots = axis.scatter(
        [p.candidate.cka for p in result.points],
        [p.accuracy_finetuned for p in result.points],
        c=[p.candidate.front_block for p in result.points],
        cmap="viridis",
    )
    figure.colorbar(dots, label=f"front block ({result.front.name})")
    axis.set_title(
        f"{result.front.name} -> {result.back.name}: Pearson {r['pearson']:.2f}, Spearman {r['spearman']:.2f}"
    )
    axis.set_xlabel("CKA at the stitch point")
    axis.set_ylabel("top-1 % after fine-tuning")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_sweep_outputs(result: SweepResult, out_dir: Path) -> dict[str, float]:
    """Write sweep.json and sweep.png (each file appears whole or not at all); returns the correlation."""
    r = correlation(result)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sweep-", dir=out_dir))
    try:
        (staging / "sweep.json").write_text(json.dumps(sweep_document(result, r), indent=2) + "\n")
        plot_sweep(result, r, staging / "sweep.png")
        for name in ("sweep.json", "sweep.png"):
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return r

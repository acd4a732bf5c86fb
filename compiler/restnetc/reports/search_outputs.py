"""Files and table written by ``restnetc search``: cka.npy, cka.png, variants.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from restnetc.atomic import staged_files
from restnetc.config.units import format_count
from restnetc.reports.cka_plot import plot_cka
from restnetc.results import ParentResult, SearchResult, VariantResult

VARIANTS_SCHEMA_VERSION = 2


def parent_document(parent: ParentResult) -> dict[str, Any]:
    """A parent's entry in variants.json and sweep.json."""
    return {
        "model": parent.name,
        "role": parent.role,
        "blocks": parent.blocks,
        "params": parent.cost.params,
        "macs": parent.cost.macs,
        "flops": parent.cost.flops,
        "accuracy": round(parent.accuracy, 3),
        "accuracy_validation": round(parent.scores.validation, 3),
        "task_head": parent.task_head,
    }


def _variant(result: SearchResult, variant: VariantResult) -> dict[str, Any]:
    c = variant.candidate
    return {
        "budget": {
            "metric": variant.budget.metric.value,
            "limit": variant.budget.limit,
            "text": variant.budget.describe(),
        },
        "front": {"model": result.front.name, "block": c.front_block},
        "back": {"model": result.back.name, "block": c.back_block, "resumes_at_block": c.back_block + 1},
        "order": result.project.order.value,
        "cka": round(c.cka, 6),
        "params": c.cost.params,
        "macs": c.cost.macs,
        "flops": c.cost.flops,
        "stitch_kind": variant.stitch_kind,
        "trainable_params": variant.trainable_params,
        "finetune_seconds": round(variant.finetune_seconds, 2),
        "finetune_steps": variant.finetune_steps,
        "finetune_best_epoch": variant.finetune_best_epoch,
        "accuracy": {
            "before_finetune": round(variant.accuracy_init, 3),
            "after_finetune": round(variant.accuracy_finetuned, 3),
            "validation": round(variant.scores.validation, 3),
        },
        "selection": {
            "selector": variant.selection.selector,
            "cka_rank": variant.selection.cka_rank,
            "selector_rank": variant.selection.selector_rank,
            "shortlist": [{"front_block": i, "back_block": j, "score": v} for i, j, v in variant.selection.shortlist],
            "dominated": variant.selection.dominated,
        },
    }


def variants_document(result: SearchResult) -> dict[str, Any]:
    """The content of variants.json."""
    project = result.project
    return {
        "schema_version": VARIANTS_SCHEMA_VERSION,
        "project": project.name,
        "target": result.target.name,
        "input_size": project.data.input_size,
        "macs_convention": "macs = multiply-accumulates per image; flops = 2 * macs (torch FlopCounterMode)",
        "accuracy_convention": f"top-1 % on {project.data.test_images} held-out test images; 'validation' on "
        f"{project.data.validation_images} validation images, on which every choice was made",
        "calibration": {"samples": result.calibration_samples, **project.calibration.model_dump(mode="json")},
        "finetune": project.finetune.model_dump(mode="json"),
        "search": project.search.model_dump(mode="json"),
        "parents": {"front": parent_document(result.front), "back": parent_document(result.back)},
        "parents_note": result.parents_note,
        "variants": [_variant(result, v) for v in result.variants],
        "dropped": [{"budget": d.budget.describe(), "reason": d.reason} for d in result.dropped],
        "search_seconds": round(result.seconds, 1),
    }


def write_search_outputs(result: SearchResult, out_dir: Path) -> None:
    """Write cka.npy, cka.png and variants.json; each file appears whole or not at all."""
    with staged_files(out_dir) as staging:
        np.save(staging / "cka.npy", result.cka)
        points = [(v.candidate.front_block, v.candidate.back_block, v.budget.describe()) for v in result.variants]
        plot_cka(result.cka, result.front.name, result.back.name, points, staging / "cka.png")
        (staging / "variants.json").write_text(json.dumps(variants_document(result), indent=2) + "\n")


def variants_table(result: SearchResult) -> Table:
    """The ladder as a table: both parents and every variant."""
    table = Table(title=f"{result.project.name} on {result.target.name}: {result.front.name} -> {result.back.name}")
    for column in (
        "variant",
        "stitch i->j",
        "CKA",
        "params",
        "MACs",
        "trainable",
        "top-1 init %",
        "top-1 tuned %",
        "val %",
        "rank CKA/sel",
        "tune s",
    ):
        table.add_column(column, justify="right" if column != "variant" else "left")
    for parent in (result.back, result.front):
        table.add_row(
            f"{parent.name} ({parent.role} parent)",
            "-",
            "-",
            format_count(parent.cost.params),
            format_count(parent.cost.macs),
            "-",
            "-",
            f"{parent.accuracy:.2f}",
            f"{parent.scores.validation:.2f}",
            "-",
            "-",
        )
    for v in result.variants:
        c = v.candidate
        table.add_row(
            v.budget.describe(),
            f"{c.front_block} -> {c.back_block}",
            f"{c.cka:.3f}",
            format_count(c.cost.params),
            format_count(c.cost.macs),
            format_count(v.trainable_params),
            f"{v.accuracy_init:.2f}",
            f"{v.accuracy_finetuned:.2f}",
            f"{v.scores.validation:.2f}",
            f"{v.selection.cka_rank}/{v.selection.selector_rank}",
            f"{v.finetune_seconds:.1f}",
        )
    return table

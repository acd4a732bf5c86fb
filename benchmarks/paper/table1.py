"""Table I analog: each model pair's parents and a ladder of stitched variants, in fp32 and as int8 artifacts.

For VGG19->VGG11, ResNet34->VGG11, DeiT-S->DeiT-Ti and ResNet18->Swin-Ti from the zoo (Fashion-MNIST, 32 px),
and the built-in EfficientNet-Lite2->Lite0 demo (fine-tuned checkpoints, 64 px), ``restnetc build`` makes a
ladder of four params budgets evenly spaced between the two parents, fine-tunes each variant's stitching
layer and lowers every model to int8 ``.pte`` and ``.tflite``. The table lists accuracy (eager fp32, then
each int8 artifact in its own runtime), params, MACs, trainable params and fine-tuning time.

Usage: ``.venv/bin/python benchmarks/paper/table1.py [--pairs vgg19-vgg11 ...]``. Writes
``benchmarks/results/table1.{md,json,png}``; pairs not named keep their rows from the previous run.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import common
import matplotlib.pyplot as plt

DEMO = "demo-effnet-lite"
DEMO_TITLE = "EfficientNet-Lite2 -> Lite0 (demo)"


def build_pair(pair: common.Pair) -> Path:
    """Build the pair's bundle; returns its directory."""
    work = common.WORK / "table1" / pair.slug
    project_file = common.write_yaml(work / "project.yaml", common.project(pair.slug, pair.a, pair.b, pair.order))
    target_file = common.write_yaml(work / "target.yaml", common.pair_target(pair))
    common.restnetc("build", "--target", target_file, "--project", project_file, "--out", work / "bundle")
    return work / "bundle"


def build_demo(existing: Path | None) -> Path:
    """The demo's bundle: ``existing`` (made by ``restnetc build --target targets/cortex-a53.yaml``) or a new one."""
    if existing is not None:
        return existing
    bundle = common.WORK / "table1" / DEMO / "bundle"
    common.restnetc("build", "--target", common.ROOT / "targets" / "cortex-a53.yaml", "--out", bundle)
    return bundle


def _stitch_id(variant: dict[str, Any]) -> str:
    return f"stitch-{variant['front']['block']:02d}-{variant['back']['block']:02d}"


def rows_of(title: str, bundle: Path) -> list[dict[str, Any]]:
    """One row per model the bundle lowered (parents and variants), smallest first; an artifact the target's
    ``ladder.dominated: drop`` left out keeps its figure, with its backend in the row's ``dropped``."""
    variants = {_stitch_id(v): v for v in json.loads((bundle / "variants.json").read_text())["variants"]}
    manifest = json.loads((bundle / "manifest.json").read_text())
    entries = [(a, False) for a in manifest["artifacts"]] + [(d, True) for d in manifest.get("dropped", [])]
    models: dict[str, dict[str, Any]] = {}
    for entry, dropped in entries:
        model = models.setdefault(entry["id"], {"entry": entry, "int8": {}, "dropped": []})
        model["int8"][entry["backend"]] = entry["accuracy"]["artifact"]
        if dropped:
            model["dropped"].append(entry["backend"])
    rows = []
    for model_id, model in models.items():
        entry, variant = model["entry"], variants.get(model_id)
        rows.append(
            {
                "pair": title,
                "model": model_id,
                "cut": f"{variant['front']['block']}->{variant['back']['resumes_at_block']}" if variant else "-",
                "cka": variant["cka"] if variant else None,
                "params": entry["params"],
                "macs": entry["macs"],
                "trainable": variant["trainable_params"] if variant else entry["params"],
                "finetune_seconds": variant["finetune_seconds"] if variant else None,
                "fp32": entry["accuracy"]["eager_fp32"],
                "tflite_int8": model["int8"].get("litert"),
                "pte_int8": model["int8"].get("executorch"),
                "dropped": sorted(model["dropped"]),
                "images": entry["accuracy"]["images"],
            }
        )
    return sorted(rows, key=lambda row: row["params"])


def monotone(rows: list[dict[str, Any]]) -> bool:
    """Whether fp32 accuracy never drops (beyond 0.5 points of noise) as params grow along the ladder."""
    return all(b["fp32"] >= a["fp32"] - 0.5 for a, b in itertools.pairwise(rows))


def verdict(title: str, rows: list[dict[str, Any]]) -> str:
    """Whether the variants rise with params, and whether the whole ladder (parents included) does."""
    variants = [row for row in rows if row["cut"] != "-"]
    parents = [f"{row['fp32']:.2f}% ({common.millions(row['params'])})" for row in rows if row["cut"] == "-"]
    climb = " -> ".join(f"{row['fp32']:.2f}" for row in variants)
    return (
        f"- {title}: variants {climb}% (rising with params: {'yes' if monotone(variants) else 'no'}); "
        f"parents {' and '.join(parents)}; "
        f"whole ladder monotone: {'yes' if monotone(rows) else 'no'} (0.5-point noise allowed)"
    )


def _int8(row: dict[str, Any], backend: str) -> str:
    """A row's int8 figure for ``backend``, marked when the bundle dropped that artifact as dominated."""
    figure = row["tflite_int8" if backend == "litert" else "pte_int8"]
    return f"{figure:.2f}" + (" (dropped)" if backend in row.get("dropped", []) else "")


def write(results: dict[str, list[dict[str, Any]]]) -> None:
    header = ["pair", "model", "cut i->j", "CKA", "params", "MACs", "trainable", "tune s", "fp32 %",
              ".tflite int8 %", ".pte int8 %"]  # fmt: skip
    table = []
    for rows in results.values():
        for row in rows:
            table.append([
                row["pair"], row["model"], row["cut"], f"{row['cka']:.3f}" if row["cka"] else "-",
                common.millions(row["params"]), common.millions(row["macs"]), common.millions(row["trainable"]),
                f"{row['finetune_seconds']:.1f}" if row["finetune_seconds"] is not None else "-",
                f"{row['fp32']:.2f}", _int8(row, "litert"), _int8(row, "executorch"),
            ])  # fmt: skip
    verdicts = [verdict(title, rows) for title, rows in results.items()]
    images = ", ".join(f"{rows[0]['images']} for {title}" for title, rows in results.items())
    text = (
        "# Table I analog: stitched ladders (Fashion-MNIST)\n\n"
        f"Accuracy: top-1 % on held-out test images ({images}); int8 columns run each artifact in its own runtime.\n"
        "(dropped): an artifact the bundle left out as dominated by a cheaper, more accurate one on validation "
        "(`ladder.dominated: drop`, the reason in its manifest).\n"
        "Trainable: the stitching layer's parameters for variants; all parameters for parents (trained from "
        "scratch, or ImageNet-pretrained then fine-tuned on the task for the demo).\n\n"
        + common.markdown_table(header, table)
        + "\n"
        + "\n".join(verdicts)
        + "\n"
    )
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    (common.RESULTS / "table1.md").write_text(text)
    (common.RESULTS / "table1.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results)


def plot(results: dict[str, list[dict[str, Any]]]) -> None:
    figure, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.6), squeeze=False)
    for axis, (title, rows) in zip(axes[0], results.items(), strict=True):
        params = [row["params"] / 1e6 for row in rows]
        for key, label, style in (("fp32", "fp32 (eager)", "o-"), ("tflite_int8", ".tflite int8", "s--"),
                                  ("pte_int8", ".pte int8", "^:")):  # fmt: skip
            axis.plot(params, [row[key] for row in rows], style, label=label)
        axis.set_title(title)
        axis.set_xlabel("params (M)")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 %")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(common.RESULTS / "table1.png", dpi=120)


def main() -> None:
    parser = common.pairs_parser(__doc__, [pair.slug for pair in common.PAIRS] + [DEMO])
    parser.add_argument(
        "--demo-bundle", type=Path, help="use this demo bundle (from restnetc build on cortex-a53) instead of building"
    )
    args = parser.parse_args()
    results = common.previous_results("table1") or {}
    for pair in common.PAIRS:
        if pair.slug in args.pairs:
            results[pair.title] = rows_of(pair.title, build_pair(pair))
    if DEMO in args.pairs:
        results[DEMO_TITLE] = rows_of(DEMO_TITLE, build_demo(args.demo_bundle))
    order = [pair.title for pair in common.PAIRS] + [DEMO_TITLE]
    write({title: results[title] for title in order if title in results})


if __name__ == "__main__":
    main()

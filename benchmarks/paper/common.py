"""What the paper experiments share: zoo model specs, project and target files, the restnetc CLI, tables.

Every experiment drives restnetc through its CLI (``.venv/bin/restnetc``) on project and target files it
writes under ``build/paper/<experiment>/``, then reads the outputs restnetc writes for any user
(``variants.json``, ``manifest.json``). Stages are cached as for any user (``$RESTNETC_CACHE`` or
``~/.cache/restnetc``), so a re-run only redoes what changed. Results go to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from restnetc.atomic import write_text_atomic
from restnetc.backends.base import Backend
from restnetc.cache import Cache
from restnetc.config.loader import demo_project_path, load_project, load_target
from restnetc.config.project import ProjectConfig
from restnetc.config.target import TargetConfig
from restnetc.data import ImageSet
from restnetc.evaluation import compare_paired, wilson_interval
from restnetc.native_output import captured
from restnetc.pipeline.search import _prepare, _Prepared, run_search
from restnetc.results import SearchResult, VariantResult

ROOT = Path(__file__).resolve().parents[2]
ZOO = ROOT / "benchmarks" / "zoo"
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "build" / "paper"
RESTNETC = ROOT / ".venv" / "bin" / "restnetc"
IMAGE_SIZE = 32
CLASS_IMAGES = {"train_images": 5000, "test_images": 5000}


@dataclass(frozen=True)
class Pair:
    """A pair of zoo models (``zoo.json`` keys) that experiments stitch, ``a`` in front in ``order``."""

    slug: str
    title: str
    a: str
    b: str
    order: str


PAIRS = (
    Pair("vgg19-vgg11", "VGG19 -> VGG11", "zoo_vgg19", "zoo_vgg11", "slow-to-fast"),
    Pair("resnet34-vgg11", "ResNet34 -> VGG11", "zoo_resnet34", "zoo_vgg11", "slow-to-fast"),
    Pair("deits-deitti", "DeiT-S -> DeiT-Ti", "zoo_deit_s", "zoo_deit_ti", "slow-to-fast"),
    # The paper's heterogeneous pair puts the smaller CNN in front of the larger Swin-Ti: fast-to-slow.
    Pair("resnet18-swinti", "ResNet18 -> Swin-Ti", "zoo_resnet18", "zoo_swin_ti", "fast-to-slow"),
)
"""Table I's zoo pairs, which the benchmarks comparing across pairs run too."""


def pairs_parser(doc: str, slugs: Sequence[str]) -> argparse.ArgumentParser:
    """An experiment's command line: ``--pairs`` picks the model pairs to (re-)run, by default all of ``slugs``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument(
        "--pairs", nargs="+", choices=slugs, default=list(slugs), help="pairs to run (others keep their last results)"
    )
    return parser


def previous_results(name: str) -> Any:
    """``benchmarks/results/<name>.json`` as the last run wrote it, or None before the first run."""
    stored = RESULTS / f"{name}.json"
    return json.loads(stored.read_text()) if stored.exists() else None


def kept_rows(name: str, rerun_titles: set[str]) -> list[dict[str, Any]]:
    """The rows of ``benchmarks/results/<name>.json`` (a list of rows with a ``pair`` title) not being re-run."""
    return [row for row in previous_results(name) or [] if row["pair"] not in rerun_titles]


def store_rows(
    name: str, settings: dict[str, Any], rows: list[dict[str, Any]], key: str | tuple[str, ...]
) -> list[dict[str, Any]]:
    """Write ``rows`` and ``settings`` to ``benchmarks/results/<name>.json``, keeping the stored rows whose ``key``
    (a backend, a model; or several fields, a tuple) was not run again when they were run with the same
    ``settings``; all rows written."""
    fields = (key,) if isinstance(key, str) else key

    def run_of(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[field] for field in fields)

    previous = previous_results(name)
    if previous is not None and previous["settings"] == settings:
        ran = {run_of(row) for row in rows}
        rows = [row for row in previous["rows"] if run_of(row) not in ran] + rows
    write_text_atomic(RESULTS / f"{name}.json", json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    return rows


def zoo() -> dict[str, Any]:
    """``benchmarks/zoo/zoo.json``: every trained model with its checkpoint, sha256 and figures."""
    return dict(json.loads((ZOO / "zoo.json").read_text()))


def zoo_model(arch: str) -> dict[str, Any]:
    """A project's model entry for zoo architecture ``arch`` (checkpoint pinned by its sha256)."""
    entry = zoo()["models"][arch]
    return {"source": "timm", "arch": arch, "checkpoint": str(ZOO / entry["checkpoint"]), "sha256": entry["sha256"]}


def project(name: str, a: str, b: str, order: str = "slow-to-fast", **overrides: Any) -> dict[str, Any]:
    """A project stitching zoo models ``a`` and ``b`` on Fashion-MNIST at 32 px, with the zoo's normalisation.

    ``overrides`` replace top-level sections (e.g. ``finetune={...}``).
    """
    data = {
        "source": {"kind": "fashion-mnist"},
        "input_size": IMAGE_SIZE,
        "normalization": zoo()["normalization"],
        **CLASS_IMAGES,
    }
    return {
        "schema_version": 1,
        "name": name,
        "models": {"a": zoo_model(a), "b": zoo_model(b)},
        "order": order,
        "data": data,
        "calibration": {"images": 512, "batch_size": 64},
        "finetune": {"init": "least-squares", "epochs": 3, "batch_size": 64, "lr": 1e-3},
        "seed": 0,
        **overrides,
    }


def demo(held_out: dict[str, int]) -> ProjectConfig:
    """The built-in demo with the held-out split sizes ``held_out`` names (``validation_images``,
    ``test_images``) over its own.

    Its parents were fine-tuned on every training image outside its own validation split, so a larger
    validation split would score them on images they learned: that is refused with a
    clear message (SystemExit). The test split, drawn from the test images, may take any size."""
    project = load_project(demo_project_path())[0]
    own = project.data.validation_images
    if held_out.get("validation_images", own) > own:
        raise SystemExit(
            f"--validation-images: the demo's parents were trained on every training image outside its "
            f"{own} validation images; at most {own}"
        )
    return project.model_copy(update={"data": project.data.model_copy(update=held_out)})


def pair(slug: str) -> Pair:
    """The ``PAIRS`` entry named ``slug`` (KeyError for another)."""
    return {p.slug: p for p in PAIRS}[slug]


def pair_project(slug: str, held_out: dict[str, int]) -> ProjectConfig:
    """The project of zoo pair ``slug`` (a ``PAIRS`` slug) or of the demo (``"demo"``), with the held-out split
    sizes ``held_out`` names (``validation_images``, ``test_images``) over its own."""
    if slug == "demo":
        return demo(held_out)
    zoo_pair = pair(slug)
    config = ProjectConfig.model_validate(project(zoo_pair.slug, zoo_pair.a, zoo_pair.b, zoo_pair.order))
    return config.model_copy(update={"data": config.data.model_copy(update=held_out)})


def add_pair_arguments(parser: argparse.ArgumentParser, test_images: int | None = None) -> None:
    """The options ``pair_setup`` reads: ``--pair``, ``--target`` (the demo's), ``--validation-images`` and
    ``--test-images`` (default ``test_images``; None: the project's own)."""
    parser.add_argument("--pair", choices=["demo", *(p.slug for p in PAIRS)], default="demo")
    parser.add_argument("--target", type=Path, default=Path("targets/cortex-a53.yaml"), help="the demo's target")
    parser.add_argument("--validation-images", type=int, help="default: the project's own (the demo's at most)")
    parser.add_argument("--test-images", type=int, default=test_images, help="default: %(default)s (None: its own)")


def pair_setup(args: argparse.Namespace) -> tuple[ProjectConfig, TargetConfig]:
    """The project of ``args.pair`` (a ``PAIRS`` slug or ``"demo"``) with the held-out sizes given (None: its own),
    and its target: Table I's for a zoo pair, ``args.target`` for the demo (``add_pair_arguments`` declares them)."""
    sizes = {"validation_images": args.validation_images, "test_images": args.test_images}
    project = pair_project(args.pair, {name: n for name, n in sizes.items() if n is not None})
    if args.pair == "demo":
        return project, load_target(args.target)
    return project, TargetConfig.model_validate(pair_target(pair(args.pair)))


def pair_target(pair: Pair) -> dict[str, Any]:
    """Table I's target for ``pair``: four params budgets evenly spaced between its parents' sizes."""
    return target(f"table1-{pair.slug}", ladder_budgets(*parent_sizes(pair.a, pair.b)))


def target(name: str, budgets: Sequence[float], backends: Sequence[str] = ("executorch", "litert")) -> dict[str, Any]:
    """A Cortex-A53 target with one params budget per entry of ``budgets``."""
    return {
        "schema_version": 1,
        "name": name,
        "description": "Raspberry Pi 3 class board (paper experiments)",
        "device": {"arch": "aarch64", "cpu": "cortex-a53", "cores": 4, "memory": "1GB"},
        "runtime": {"backends": list(backends), "quantization": "int8", "threads": 2},
        "budgets": [{"params": int(limit)} for limit in budgets],
        "accuracy": {"policy": "keep-float"},
        "measurement": {"warmup": 2, "runs": 10},
        "bundle": {"layout": "per-rung"},  # as the paper's figures were taken: a file per rung and backend
    }


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def restnetc(*args: str | Path) -> None:
    """Run the restnetc CLI; its progress goes to this process's stderr. Stops the experiment on failure."""
    command = [str(RESTNETC), *map(str, args)]
    print("$", " ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True)


def ladder_budgets(small: int, large: int, rungs: int = 4) -> list[float]:
    """``rungs`` params limits evenly spaced above ``small`` up to ``large``: one band per rung."""
    return [small + (large - small) * (k + 1) / rungs for k in range(rungs)]


def _parents_ladder(name: str, prepared: _Prepared) -> TargetConfig:
    """A four-rung params ladder between ``prepared``'s parents as stitched (task heads in place), dominated rungs
    kept: the target of benchmarks that compare ways of filling the same rungs."""
    sizes = sorted(parent.costs.total.params for parent in (prepared.front, prepared.back))
    config = target(name, ladder_budgets(sizes[0], sizes[1]))
    config["ladder"] = {"dominated": "keep"}
    return TargetConfig.model_validate(config)


def search_arms(
    project: ProjectConfig, arms: Mapping[str, ProjectConfig], name: str
) -> tuple[dict[str, SearchResult], dict[str, float], dict[str, dict[str, Any]]]:
    """Each arm (a variant of ``project``) searched on ``project``'s parents over a four-rung params ladder
    (``_parents_ladder``): parents, task heads and the CKA matrix are computed once into a base cache, and each arm
    starts from a copy of it, so its seconds count only its own work. Returns each arm's result, its seconds, and
    the parents' validation and test top-1 (the first arm's)."""
    results: dict[str, SearchResult] = {}
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as work:
        base = Path(work) / "base"
        target = _parents_ladder(name, _prepare(project, None, Cache(base)))
        for arm, config in arms.items():
            cache = Path(work) / arm
            shutil.copytree(base, cache)
            start = time.perf_counter()
            results[arm] = run_search(config, target, Cache(cache))
            seconds[arm] = round(time.perf_counter() - start, 1)
    first = next(iter(results.values()))
    parents = {
        p.name: {"validation": round(p.scores.validation, 2), "test": round(p.scores.test, 2)}
        for p in (first.front, first.back)
    }
    return results, seconds, parents


def variant_row(variant: VariantResult) -> dict[str, Any]:
    """A searched rung's budget, stitch point and top-1 (validation; test with its 95% Wilson interval), the
    figures every arms comparison stores per rung."""
    scores = variant.scores
    correct = int(scores.test_correct.sum())
    return {
        "budget": variant.budget.describe(),
        "point": f"{variant.candidate.front_block}->{variant.candidate.back_block}",
        "validation": round(scores.validation, 2),
        "test": round(scores.test, 2),
        "test_interval": [round(x, 2) for x in wilson_interval(correct, len(scores.test_correct))],
    }


def arms_heading(entry: Mapping[str, Any]) -> list[str]:
    """A pair's markdown heading and its line of parents, search seconds per arm and held-out sizes (runs stored
    before sizes were recorded have none)."""
    parents = ", ".join(f"{name} {f['test']}% (val {f['validation']}%)" for name, f in entry["parents"].items())
    times = ", ".join(f"{arm} {seconds} s" for arm, seconds in entry["seconds"].items())
    images = entry.get("images")
    sizes = "" if images is None else f" Held out: {images['validation']} validation, {images['test']} test images."
    return [f"### {entry['pair']}\n", f"Parents: {parents}. Search time: {times}.{sizes}\n"]


def test_cell(row: Mapping[str, Any]) -> str:
    """A row's test top-1 with its 95% interval, as a table cell."""
    low, high = row["test_interval"]
    return f"{row['test']} [{low}, {high}]"


def paired_cell(versus: Mapping[str, Any] | None) -> str:
    """A ``paired`` comparison as a table cell: the difference, its 95% interval and p; "-" for none."""
    if versus is None:
        return "-"
    low, high = versus["interval"]
    return f"{versus['difference']:+.2f} [{low:+.2f}, {high:+.2f}], p={versus['p_value']}"


def mean_lines(rows: Sequence[Mapping[str, Any]], arm_key: str, versus_key: str, reference: str) -> list[str]:
    """Per arm (``row[arm_key]``) compared with ``reference``: the mean paired difference over its rungs."""
    lines = []
    for arm in dict.fromkeys(row[arm_key] for row in rows):
        diffs = [r[versus_key]["difference"] for r in rows if r[arm_key] == arm and versus_key in r]
        if diffs:
            lines.append(f"- {arm} vs {reference}: mean {statistics.mean(diffs):+.2f} points over {len(diffs)} rungs\n")
    return lines


def simulated_correct(model: torch.nn.Module, images: ImageSet) -> torch.Tensor:
    """Per image of ``images``, whether ``model`` (eager, or an int8 graph simulated in PyTorch) gets its label."""
    with torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in images.images.split(250)])
    return logits.argmax(1) == images.labels


def top1(correct: torch.Tensor) -> float:
    """Top-1 in percent, rounded to 2 decimals, of per-image correctness ``correct``."""
    return round(float(correct.double().mean() * 100), 2)


def runtime_correct(
    backend: Backend, path: Path, threads: int, images: torch.Tensor, labels: torch.Tensor
) -> np.ndarray:
    """Per image, whether the artifact at ``path`` run in ``backend``'s runtime on ``threads`` threads gets the
    label right (its native output captured)."""
    with captured():
        return np.asarray(backend.runtime.load(path, threads)(images.numpy()).argmax(1) == labels.numpy())


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """``a`` minus ``b`` (per-image top-1 correctness on the same images), paired: the difference in points, its
    95% interval (Newcombe) and the exact McNemar p, as the results files store it."""
    comparison = compare_paired(a, b)
    return {
        "difference": round(comparison.difference, 2),
        "interval": [round(x, 2) for x in comparison.interval],
        "p_value": round(comparison.p_value, 4),
    }


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def millions(count: float) -> str:
    return f"{count / 1e6:.2f}M"


def search(
    work: Path, project_config: dict[str, Any], target_config: dict[str, Any], cache: Path | None = None
) -> dict[str, Any]:
    """``restnetc search`` on the two configs (written under ``work``); returns its ``variants.json``.

    ``cache`` replaces the user's stage cache (for timings that must all be measured in this run).
    """
    project_file = write_yaml(work / "project.yaml", project_config)
    target_file = write_yaml(work / "target.yaml", target_config)
    cache_option = ["--cache-dir", cache] if cache is not None else []
    restnetc("search", "--target", target_file, "--project", project_file, "--out", work / "search", *cache_option)
    return dict(json.loads((work / "search" / "variants.json").read_text()))


def parent_sizes(*archs: str) -> list[int]:
    """Params of zoo models, ascending."""
    models = zoo()["models"]
    return sorted(models[arch]["params"] for arch in archs)


def ladder_variants(
    experiment: str,
    a: str,
    b: str,
    label: str,
    order: str = "slow-to-fast",
    cache: Path | None = None,
    **finetune: Any,
) -> list[dict[str, Any]]:
    """``restnetc search`` on the four-rung params ladder between zoo models ``a`` and ``b``, with ``finetune``
    settings changed; one row per variant (budget, stitch point, costs, fine-tuning figures, accuracy)."""
    slug = f"{a}-{b}-{label.replace('+', '-')}"
    config = project(slug, a, b, order)
    config["finetune"] = {**config["finetune"], **finetune}
    found = search(WORK / experiment / slug, config, target(slug, ladder_budgets(*parent_sizes(a, b))), cache)
    return [
        {
            "budget": v["budget"]["text"],
            "limit": v["budget"]["limit"],
            "front": f"{v['front']['model']}[..{v['front']['block']}]",
            "back": f"{v['back']['model']}[{v['back']['resumes_at_block']}..]",
            "cut": f"{v['front']['block']}->{v['back']['resumes_at_block']}",
            "cka": v["cka"],
            "params": v["params"],
            "macs": v["macs"],
            "trainable": v["trainable_params"],
            "steps": v["finetune_steps"],
            "seconds": v["finetune_seconds"],
            "before": v["accuracy"]["before_finetune"],
            "after": v["accuracy"]["after_finetune"],
        }
        for v in found["variants"]
    ]

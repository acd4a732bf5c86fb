"""``restnetc build``: search, then lower every rung with every backend, verify, measure, and ship a bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from restnetc.atomic import staged_directory
from restnetc.backends import TensorQuantization, get_backend
from restnetc.backends.native_output import captured
from restnetc.budget.cost_table import COST_TABLE_NAME, save_table
from restnetc.budget.measure import measure_latency, probe_memory
from restnetc.bundle.budget_check import check_budget, predicted_costs
from restnetc.bundle.ladder import Rung, eager_logits, ladder
from restnetc.bundle.lowering import HeldOut, Lowerer, Verified
from restnetc.bundle.manifest import (
    Accuracy,
    Artifact,
    BudgetCheck,
    Delegation,
    Dropped,
    InputSpec,
    Latency,
    Manifest,
    Memory,
    Pareto,
    Quantization,
    SplitRecord,
    Splits,
    write_manifest,
)
from restnetc.bundle.runtime_index import write_index
from restnetc.cache import Cache, stage_key, toolchain_versions
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Metric, TargetConfig
from restnetc.data import ImageSet
from restnetc.evaluation import Contender, judge, wilson_interval
from restnetc.pipeline.search import run_search
from restnetc.progress import console, step
from restnetc.reports.bundle_report import write_bundle_report
from restnetc.reports.search_outputs import variants_document
from restnetc.results import SearchResult

DEFAULT_BUNDLE_ROOT = Path("dist")


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What ``build`` produced."""

    bundle: Path
    manifest: Manifest
    search: SearchResult
    seconds: float


def _eager(rung: Rung, held_out: HeldOut, cache: Cache) -> torch.Tensor:
    key = stage_key("eager-logits", rung.digest, held_out.digest)
    if (stored := cache.load(key)) is not None:
        return stored["logits"]
    logits = eager_logits(rung.model, held_out.images)
    cache.save(key, {"logits": logits})
    return logits


def _split_record(images: ImageSet) -> SplitRecord:
    return SplitRecord(images=len(images), indices_sha256=images.indices_sha256)


def _budget_figure(metric: Metric, rung: Rung, latency: Latency, memory: Memory) -> float:
    """An artifact's figure for a budgeted metric: counted, or measured on this host."""
    if metric is Metric.PARAMS:
        return rung.params
    if metric is Metric.MACS:
        return rung.macs
    if metric is Metric.FLOPS:
        return 2 * rung.macs
    if metric is Metric.LATENCY_MS:
        return latency.host.median
    return memory.host.peak_delta


def _standings(
    keys: list[tuple[str, str]],
    figures: dict[tuple[str, str], dict[str, float]],
    results: dict[tuple[str, str], Verified],
    confidence: float,
) -> dict[tuple[str, str], Pareto]:
    """Each artifact's standing among its backend's artifacts, on the validation split."""
    standings: dict[tuple[str, str], Pareto] = {}
    for backend in dict.fromkeys(b for _, b in keys):
        ids = [rid for rid, b in keys if b == backend]
        contenders = [
            Contender(rid, figures[(rid, backend)], results[(rid, backend)].evaluation.validation.correct_array)
            for rid in ids
        ]
        for rid, standing in judge(contenders, confidence).items():
            standings[(rid, backend)] = Pareto(
                front=standing.front, dominated_by=standing.dominated_by, reason=standing.reason
            )
    return standings


def _memory(backend: str, path: Path, size: int, threads: int, planned: int | None, cache: Cache) -> Memory:
    return Memory(host=probe_memory(backend, path, (1, 3, size, size), threads, cache), planned=planned)


def _quantization(q: TensorQuantization | None) -> Quantization | None:
    return None if q is None else Quantization.model_validate(dataclasses.asdict(q))


def run_build(project: ProjectConfig, target: TargetConfig, cache: Cache, out_dir: Path | None = None) -> BuildResult:
    """Build the bundle for ``target`` into ``out_dir`` (default ``dist/<target name>``), atomically."""
    start = time.perf_counter()
    bundle = out_dir or DEFAULT_BUNDLE_ROOT / target.name
    search = run_search(project, target, cache, build=True)
    rungs = ladder(search)
    size = project.data.input_size
    validation = HeldOut.of(search.validation.images, search.validation.labels)
    test = HeldOut.of(search.test.images, search.test.labels)
    calibration = search.train.images[: target.runtime.calibration_images]
    threads = min(target.runtime.threads, os.cpu_count() or 1)
    eager = {rung.id: (_eager(rung, validation, cache), _eager(rung, test, cache)) for rung in rungs}
    eager_accuracy = {k: float((t.argmax(1) == test.labels).double().mean() * 100) for k, (_, t) in eager.items()}

    with staged_directory(bundle) as staging:
        lowerer = Lowerer(
            target.runtime.quantization, calibration, validation, test, target.accuracy, threads, cache, staging
        )
        backends = {name.value: get_backend(name) for name in target.runtime.backends}
        results = lowerer.build_all(rungs, list(backends.values()), eager)
        verified: dict[tuple[str, str], tuple[Rung, Verified, str]] = {}
        for backend in backends.values():
            (staging / backend.name).mkdir()
            for rung in rungs:
                result = results[(rung.id, backend.name)]
                relative = f"{backend.name}/{rung.id}{backend.suffix}"
                (staging / relative).write_bytes(result.lowered.data)
                verified[(rung.id, backend.name)] = (rung, result, relative)

        example = calibration[:1].numpy()
        with captured():
            invokers = {
                f"{rid}/{bname}": backends[bname].invoker(staging / relative, threads, example)
                for (rid, bname), (_, _, relative) in verified.items()
            }
        latency = measure_latency(invokers, target.measurement, threads)
        del invokers
        step(f"host latency measured: {target.measurement.runs} interleaved runs per artifact, {threads} threads")

        # Each probe is its own process: run one per core side by side.
        with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            probes = {
                key: pool.submit(
                    _memory, key[1], staging / relative, size, threads, result.lowered.planned_memory, cache
                )
                for key, (_, result, relative) in verified.items()
            }
            memories = {key: probe.result() for key, probe in probes.items()}
        measured: dict[tuple[str, str], tuple[Latency, Memory, BudgetCheck | None]] = {}
        for (rid, bname), (rung, _, _) in verified.items():
            measured_latency, memory = Latency(host=latency[f"{rid}/{bname}"]), memories[(rid, bname)]
            budget_check = None
            if search.costs is not None and bname == search.costs.backend.value:
                predicted_ms, predicted_bytes = predicted_costs(search.costs, rung)
                measured_latency = measured_latency.model_copy(update={"predicted": predicted_ms})
                memory = memory.model_copy(update={"predicted": predicted_bytes})
                budget_check = check_budget(rung, target.costs.source, measured_latency, memory)
                if budget_check is not None and not budget_check.met:
                    check = budget_check
                    console.print(
                        f"[bold yellow]BUDGET WARNING[/] {rid} {bname}: {check.metric} {check.figure:.4g} "
                        f"({check.source}) is over the budget's {check.limit:.4g}",
                        highlight=False,
                    )
            measured[(rid, bname)] = (measured_latency, memory, budget_check)
        metrics = list(dict.fromkeys(budget.metric for budget in target.budgets))
        figures = {
            key: {m.value: _budget_figure(m, verified[key][0], *measured[key][:2]) for m in metrics} for key in verified
        }
        standings = _standings(list(verified), figures, results, target.ladder.confidence)
        artifacts, dropped = [], []
        for (rid, bname), (rung, result, relative) in verified.items():
            data = result.lowered.data
            measured_latency, memory, budget_check = measured[(rid, bname)]
            evaluation, standing = result.evaluation, standings[(rid, bname)]
            correct = evaluation.test.correct_array
            accuracy = Accuracy(
                eager_fp32=round(eager_accuracy[rid], 3),
                artifact=evaluation.test.accuracy,
                images=len(test.labels),
                interval=tuple(round(x, 3) for x in wilson_interval(int(correct.sum()), len(correct))),
                validation=evaluation.validation.accuracy,
                validation_images=len(validation.labels),
            )
            if not standing.front and target.ladder.dominated != "keep":
                verdict = "dropped" if target.ladder.dominated == "drop" else "shipped"
                console.print(f"[bold yellow]LADDER[/] {rid} {bname} {verdict}: {standing.reason}", highlight=False)
                if target.ladder.dominated == "drop":
                    (staging / relative).unlink()
                    dropped.append(
                        Dropped(
                            id=rid,
                            role="parent" if rung.role == "parent" else "variant",
                            backend=bname,
                            params=rung.params,
                            macs=rung.macs,
                            latency_ms=measured_latency.host.median,
                            memory_bytes=memory.host.peak_delta,
                            accuracy=accuracy,
                            pareto=standing,
                        )
                    )
                    continue
            input_q = result.lowered.input_quantization
            artifacts.append(
                Artifact(
                    id=rid,
                    role="parent" if rung.role == "parent" else "variant",
                    backend=bname,
                    quantization=target.runtime.quantization.value,
                    float_modules=list(result.float_modules),
                    file=relative,
                    entry_point=result.lowered.entry_point,
                    bytes=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    params=rung.params,
                    macs=rung.macs,
                    budget=rung.budget.describe() if rung.budget else None,
                    budget_check=budget_check,
                    stitch=rung.stitch,
                    accuracy=accuracy,
                    agreement=evaluation.test.agreement,
                    max_logit_diff=evaluation.test.max_logit_diff,
                    latency_ms=measured_latency,
                    memory_bytes=memory,
                    input=InputSpec(
                        shape=(1, 3, size, size),
                        dtype="float32" if input_q is None else input_q.dtype,
                        normalization={"mean": project.data.normalization.mean, "std": project.data.normalization.std},
                        quantization=_quantization(input_q),
                        output_quantization=_quantization(result.lowered.output_quantization),
                    ),
                    delegation=Delegation(**result.lowered.delegation.__dict__),
                    policy=result.policy,
                    pareto=standing,
                )
            )
        step(f"memory measured for {len(artifacts)} artifacts (separate processes)")
        manifest = Manifest(
            target=target.model_dump(mode="json", by_alias=True),
            project=project.model_dump(mode="json"),
            splits=Splits(
                train=_split_record(search.train),
                validation=_split_record(search.validation),
                test=_split_record(search.test),
            ),
            labels=list(search.train.classes),
            tools=toolchain_versions(),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            accuracy_tolerance_points=target.accuracy.tolerance_points,
            artifacts=artifacts,
            dropped=dropped,
        )
        write_manifest(staging, manifest)
        write_index(staging, manifest)
        np.save(staging / "cka.npy", search.cka)
        if search.costs is not None:
            save_table(search.costs, staging / COST_TABLE_NAME)
        (staging / "variants.json").write_text(json.dumps(variants_document(search), indent=2) + "\n")
        write_bundle_report(manifest, search, staging)
    return BuildResult(bundle, manifest, search, time.perf_counter() - start)

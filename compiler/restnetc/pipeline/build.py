"""``restnetc build``: search, then lower every rung with every backend, verify, measure, and ship a bundle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from restnetc.atomic import staged_directory
from restnetc.backends import ModelCard, TensorQuantization, get_backend, raw_pixels
from restnetc.budget.cost_table import COST_TABLE_NAME, save_table
from restnetc.budget.measure import TimedEntry, measure_latency, probe_memory
from restnetc.bundle import stitch_quantization
from restnetc.bundle.budget_check import budget_figure, check_budget, predicted_costs
from restnetc.bundle.ladder import Rung, eager_logits, ladder
from restnetc.bundle.lowering import Description, Lowerer
from restnetc.bundle.manifest import (
    Accuracy,
    AllInt8,
    Artifact,
    BudgetCheck,
    Delegation,
    Dropped,
    InputSpec,
    Int8Recipe,
    Latency,
    Manifest,
    Memory,
    PackingName,
    Pareto,
    SplitRecord,
    Splits,
    StitchTuned,
    write_manifest,
)
from restnetc.bundle.manifest import Quantization as ManifestQuantization
from restnetc.bundle.packing import LADDER_STEM, Member, PackJob, entry_point_name, pack_all
from restnetc.bundle.runtime_index import write_index
from restnetc.bundle.verification import EagerLogits, HeldOut, Verified, Verifier
from restnetc.cache import Cache, stage_key, toolchain_versions
from restnetc.config.project import ProjectConfig
from restnetc.config.target import Backend as BackendName
from restnetc.config.target import BundleConfig, CostSource, Layout, Metric, TargetConfig
from restnetc.data import ImageSet
from restnetc.distributed import ALONE, Ranks
from restnetc.errors import ConfigError
from restnetc.evaluation import Contender, judge, wilson_interval
from restnetc.host import usable_cpus
from restnetc.pipeline.search import run_search
from restnetc.progress import status, step, warn
from restnetc.reports.bundle_report import write_bundle_report
from restnetc.reports.search_outputs import variants_document
from restnetc.results import SearchResult
from restnetc.workers import LOCAL, Executor

DEFAULT_BUNDLE_ROOT = Path("dist")


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What ``build`` produced."""

    bundle: Path
    manifest: Manifest
    search: SearchResult
    seconds: float


@dataclasses.dataclass(frozen=True)
class Staged:
    """A verified artifact written into the staging directory at ``file`` (relative to the bundle), with its
    rung's eager fp32 top-1 on the test split (reported beside the artifact's)."""

    rung: Rung
    verified: Verified
    file: str
    eager: EagerLogits
    eager_test_top1: float
    recipe: Int8Recipe | None
    """How it was quantized (``Lowerer.recipe``)."""


@dataclasses.dataclass(frozen=True)
class Measured:
    """An artifact's host latency and memory (with the cost table's predictions) and its budget check."""

    latency: Latency
    memory: Memory
    budget_check: BudgetCheck | None


Key = tuple[str, str]
"""An artifact: (rung id, backend name)."""


def _eager(rung: Rung, held_out: HeldOut, cache: Cache) -> torch.Tensor:
    key = stage_key("eager-logits", rung.digest, held_out.digest)
    if (stored := cache.load(key)) is not None:
        return stored["logits"]
    logits = eager_logits(rung.model, held_out.images)
    cache.save(key, {"logits": logits})
    return logits


def _split_record(images: ImageSet) -> SplitRecord:
    return SplitRecord(images=len(images), indices_sha256=images.indices_sha256)


def _budget_figure(metric: Metric, rung: Rung, measured: Measured) -> float:
    """An artifact's figure for a budgeted metric, for dominance: counted, or measured on this host."""
    figure = budget_figure(metric, rung.params, rung.macs, measured.latency, measured.memory, CostSource.HOST)
    assert figure is not None, "host figures are always measured"
    return figure


def _quantization(q: TensorQuantization | None) -> ManifestQuantization | None:
    return None if q is None else ManifestQuantization.model_validate(dataclasses.asdict(q))


def _lowerer(search: SearchResult, target: TargetConfig, cache: Cache, staging: Path, executor: Executor) -> Lowerer:
    """The target's lowering: its quantization calibrated on the train split, verification on the held-out
    splits (artifacts written to ``staging`` while they run), its accuracy policy; jobs run by ``executor``."""
    validation = HeldOut.of(search.validation.images, search.validation.labels)
    test = HeldOut.of(search.test.images, search.test.labels)
    verifier = Verifier(validation, test, target.runtime.host_threads(), cache, staging)
    calibration = search.train.images[: target.runtime.calibration_images]
    card, descriptions = _card(search), {}
    for name in target.runtime.backends:
        backend = get_backend(name)
        if (writer := backend.card_writer()) is not None:
            descriptions[name.value] = Description(card, writer)
        elif (missing := backend.describe_missing()) is not None:
            warn(f"{name.value}: the artifacts state nothing about their model: {missing}")
    return Lowerer(
        target.runtime.quantization,
        calibration,
        verifier,
        target.accuracy,
        cache,
        executor=executor,
        descriptions=descriptions,
        pixels=raw_pixel_inputs(search.project, target),
    )


def raw_pixel_inputs(project: ProjectConfig, target: TargetConfig) -> dict[str, TensorQuantization]:
    """By backend name, the raw uint8 pixel input the target asks of its artifacts (``runtime.litert_input``);
    ConfigError if the project's normalisation cannot be one (``raw_pixels``)."""
    if target.runtime.litert_input != "uint8":
        return {}
    pixels = project.data.pixels()
    try:
        return {BackendName.LITERT.value: raw_pixels(pixels.mean, pixels.std)}
    except ValueError as exc:
        raise ConfigError(
            f"runtime.litert_input: uint8 does not fit project {project.name}'s data.normalization: {exc}"
        ) from None


def _card(search: SearchResult) -> ModelCard:
    """What each artifact states about its model (its rung's id is appended to the name)."""
    project, size = search.project, search.project.data.input_size
    pixels = project.data.pixels()
    classes, parents = search.train.classes, f"{search.front.name} and {search.back.name}"
    return ModelCard(
        project.name,
        f"{len(classes)}-class image classifier ({size}x{size} px), a rung of restnetc's ladder between {parents}",
        tuple(classes),
        pixels.mean,
        pixels.std,
    )


def _stitch_tuned(
    lowerer: Lowerer, search: SearchResult, target: TargetConfig, rungs: list[Rung]
) -> tuple[list[Rung], dict[str, StitchTuned]]:
    """The rungs to lower: each variant with its stitch trained under int8 simulation where that scores higher on
    validation (``runtime.stitch_tuning``; the rungs as given without it), and each variant's record."""
    config = target.runtime.stitch_tuning
    if config is None:
        return rungs, {}
    backend = get_backend(target.runtime.backends[0])
    count = min(config.train_images or len(search.train), len(search.train))
    images, labels = search.train.images[:count], search.train.labels[:count]
    tuning = stitch_quantization.StitchTuning(epochs=config.epochs, lr=config.lr, seed=search.project.seed)
    chosen, records = [], {}
    variants = [rung for rung in rungs if rung.role == "variant"]
    with status(f"stitch-aware quantization of {len(variants)} variants ({backend.name} int8 simulation)"):
        for rung in rungs:
            if rung.role != "variant":
                chosen.append(rung)
                continue
            choice = stitch_quantization.choose(
                rung, backend, lowerer.observations, images, labels, lowerer.verifier.validation, tuning
            )
            records[rung.id] = StitchTuned(
                simulated_with=backend.name,
                epochs=config.epochs,
                lr=config.lr,
                train_images=count,
                validation_plain=choice.plain,
                validation_tuned=choice.tuned,
            )
            outcome = "kept" if choice.kept else "not kept"
            trained = "stored" if choice.stored else f"{choice.seconds:.0f} s"
            step(
                f"{rung.id}: stitch trained under int8 ({trained}): simulated validation top-1 "
                f"{choice.plain:.2f}% -> {choice.tuned:.2f}%, {outcome}"
            )
            chosen.append(choice.rung)
    return chosen, records


def _lower_and_verify(
    lowerer: Lowerer, target: TargetConfig, rungs: list[Rung], staging: Path, tuned: dict[str, StitchTuned]
) -> dict[Key, Staged]:
    """Stage 1: every rung lowered with every backend and verified (the accuracy policy applied), written into
    ``staging/<backend>/<rung id><suffix>``; ``tuned``: the variants' stitch-aware quantization, by rung id."""
    validation, test = lowerer.verifier.validation, lowerer.verifier.test
    cache = lowerer.cache
    eager = {rung.id: EagerLogits(_eager(rung, validation, cache), _eager(rung, test, cache)) for rung in rungs}
    backends = [get_backend(name) for name in target.runtime.backends]
    results = lowerer.build_all(rungs, backends, eager)
    staged: dict[Key, Staged] = {}
    for backend in backends:
        (staging / backend.name).mkdir()
        for rung in rungs:
            result = results[(rung.id, backend.name)]
            relative = f"{backend.name}/{rung.id}{backend.suffix}"
            (staging / relative).write_bytes(result.lowered.data)
            top1 = float((eager[rung.id].test.argmax(1) == test.labels).double().mean() * 100)
            recipe = lowerer.recipe(rung, BackendName(backend.name))
            if recipe is not None and rung.id in tuned:
                recipe = recipe.model_copy(update={"stitch_tuning": tuned[rung.id]})
            staged[(rung.id, backend.name)] = Staged(rung, result, relative, eager[rung.id], top1, recipe)
    return staged


def _memory(
    backend: str, path: Path, size: int, threads: int, planned: int | None, cache: Cache, entry_point: str | None = None
) -> Memory:
    shape = (1, 3, size, size)
    return Memory(host=probe_memory(backend, path, shape, threads, cache, entry_point), planned=planned)


def _measure(
    staged: dict[Key, Staged], search: SearchResult, target: TargetConfig, size: int, cache: Cache, staging: Path
) -> dict[Key, Measured]:
    """Stage 2: host latency (interleaved runs) and memory (one process per probe) of every staged artifact, the
    cost table's predictions beside them, and each variant's budget checked against its source's figure."""
    threads = target.runtime.host_threads()
    example = search.train.images[:1].numpy()
    entries = {f"{rid}/{bname}": TimedEntry(bname, staging / one.file, example) for (rid, bname), one in staged.items()}
    latency = measure_latency(entries, target.measurement, threads)
    step(f"host latency measured: {target.measurement.runs} interleaved runs per artifact, {threads} threads")
    with ThreadPoolExecutor(usable_cpus()) as pool:
        probes = {
            key: pool.submit(
                _memory, key[1], staging / one.file, size, threads, one.verified.lowered.planned_memory, cache
            )
            for key, one in staged.items()
        }
        memories = {key: probe.result() for key, probe in probes.items()}
    step(f"memory measured for {len(staged)} artifacts (separate processes)")
    measured: dict[Key, Measured] = {}
    for (rid, bname), one in staged.items():
        host_latency, memory = Latency(host=latency[f"{rid}/{bname}"]), memories[(rid, bname)]
        budget_check = None
        if search.costs is not None and bname == search.costs.backend.value:
            predicted_ms, predicted_bytes = predicted_costs(search.costs, one.rung)
            host_latency = host_latency.model_copy(update={"predicted": predicted_ms})
            memory = memory.model_copy(update={"predicted": predicted_bytes})
            budget_check = check_budget(one.rung, target.costs.source, host_latency, memory)
            if budget_check is not None and not budget_check.met:
                check = budget_check
                warn(
                    f"BUDGET WARNING {rid} {bname}: {check.metric} {check.figure:.4g} "
                    f"({check.source}) is over the budget's {check.limit:.4g}"
                )
        measured[(rid, bname)] = Measured(host_latency, memory, budget_check)
    return measured


def _standings(staged: dict[Key, Staged], measured: dict[Key, Measured], target: TargetConfig) -> dict[Key, Pareto]:
    """Stage 3: each artifact's standing among its backend's artifacts on the budgeted metrics, on validation."""
    metrics = list(dict.fromkeys(budget.metric for budget in target.budgets))
    standings: dict[Key, Pareto] = {}
    for backend in dict.fromkeys(b for _, b in staged):
        contenders = [
            Contender(
                rid,
                {m.value: _budget_figure(m, one.rung, measured[(rid, b)]) for m in metrics},
                one.verified.evaluation.validation.correct_array,
            )
            for (rid, b), one in staged.items()
            if b == backend
        ]
        slack = target.ladder.slack(metrics)
        for rid, standing in judge(contenders, target.ladder.confidence, slack).items():
            standings[(rid, backend)] = Pareto(
                front=standing.front, dominated_by=standing.dominated_by, reason=standing.reason
            )
    return standings


def _accuracy(one: Staged) -> Accuracy:
    """An artifact's accuracy record: test figures with their interval (reports), validation (decisions)."""
    evaluation, replaced = one.verified.evaluation, one.verified.all_int8
    correct = evaluation.test.correct_array
    low, high = wilson_interval(int(correct.sum()), len(correct))
    all_int8 = (
        None if replaced is None else AllInt8(validation=replaced.validation.accuracy, test=replaced.test.accuracy)
    )
    return Accuracy(
        eager_fp32=round(one.eager_test_top1, 3),
        artifact=evaluation.test.accuracy,
        images=len(correct),
        interval=(round(low, 3), round(high, 3)),
        validation=evaluation.validation.accuracy,
        validation_images=len(evaluation.validation.correct),
        validation_correct=evaluation.validation.correct,
        all_int8=all_int8,
    )


def _artifact(
    one: Staged,
    bname: str,
    measured: Measured,
    standing: Pareto,
    accuracy: Accuracy,
    project: ProjectConfig,
    target: TargetConfig,
) -> Artifact:
    """The manifest entry of a shipped artifact."""
    rung, result, data = one.rung, one.verified, one.verified.lowered.data
    input_q, size, pixels = result.lowered.input_quantization, project.data.input_size, project.data.pixels()
    return Artifact(
        id=rung.id,
        role="parent" if rung.role == "parent" else "variant",
        backend=bname,
        quantization=target.runtime.quantization.value,
        float_modules=list(result.float_modules),
        file=one.file,
        entry_point=result.lowered.entry_point,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        params=rung.params,
        macs=rung.macs,
        budget=rung.budget.describe() if rung.budget else None,
        budget_check=measured.budget_check,
        stitch=rung.stitch,
        accuracy=accuracy,
        agreement=result.evaluation.test.agreement,
        max_logit_diff=result.evaluation.test.max_logit_diff,
        latency_ms=measured.latency,
        memory_bytes=measured.memory,
        input=InputSpec(
            shape=(1, 3, size, size),
            layout=result.lowered.input_layout,
            dtype="float32" if input_q is None else input_q.dtype,
            normalization=pixels.model_dump(include={"mean", "std"}),
            resize=pixels.resize,
            quantization=_quantization(input_q),
            output_quantization=_quantization(result.lowered.output_quantization),
        ),
        delegation=Delegation(**dataclasses.asdict(result.lowered.delegation)),
        policy=result.policy,
        int8=one.recipe,
        pareto=standing,
    )


def _admit(
    staged: dict[Key, Staged],
    measured: dict[Key, Measured],
    standings: dict[Key, Pareto],
    project: ProjectConfig,
    target: TargetConfig,
    staging: Path,
) -> tuple[list[Artifact], list[Dropped]]:
    """Stage 4: the ladder's verdict on each artifact under ``ladder.dominated``; the manifest entries of those
    shipped, and the record of those dropped (their files removed from ``staging``)."""
    artifacts, dropped = [], []
    for (rid, bname), one in staged.items():
        accuracy, standing, figures = _accuracy(one), standings[(rid, bname)], measured[(rid, bname)]
        if not standing.front and target.ladder.dominated != "keep":
            verdict = "dropped" if target.ladder.dominated == "drop" else "shipped"
            warn(f"LADDER {rid} {bname} {verdict}: {standing.reason}")
            if target.ladder.dominated == "drop":
                (staging / one.file).unlink()
                dropped.append(
                    Dropped(
                        id=rid,
                        role="parent" if one.rung.role == "parent" else "variant",
                        backend=bname,
                        params=one.rung.params,
                        macs=one.rung.macs,
                        latency_ms=figures.latency.host.median,
                        memory_bytes=figures.memory.host.peak_delta,
                        float_modules=list(one.verified.float_modules),
                        accuracy=accuracy,
                        int8=one.recipe,
                        pareto=standing,
                    )
                )
                continue
        artifacts.append(_artifact(one, bname, figures, standing, accuracy, project, target))
    return artifacts, dropped


def _member(one: Staged) -> Member:
    return Member(one.rung, one.verified, one.eager)


def _pack(
    lowerer: Lowerer,
    staged: dict[Key, Staged],
    artifacts: list[Artifact],
    size: int,
    staging: Path,
    bundle: BundleConfig,
) -> list[Artifact]:
    """Stage 4b (``bundle.layout: ladder``): the shipped artifacts of each backend whose layout is ``ladder``
    become entry points of one program, ``staging/<backend>/ladder<suffix>``, verified to compute what the
    per-rung files did (``packing``), which are removed; other backends' artifacts are left as they are. Each
    entry keeps its figures, except memory: probed again, loading that entry point of the program (what the
    shim loads), and measured budgets held to it again; ``host.program``, what the open program holds, is the
    largest of its entries' probes for all of them."""
    backends = [BackendName(b) for b in dict.fromkeys(a.backend for a in artifacts)]
    laddered = [b for b in backends if bundle.layout_of(b) is Layout.LADDER]
    members = [a for a in artifacts if a.backend in laddered]
    if not members:
        return artifacts
    jobs = [
        PackJob(backend, tuple(_member(staged[(a.id, a.backend)]) for a in members if a.backend == backend))
        for backend in laddered
    ]
    packed = pack_all(lowerer, jobs)
    files, packings = {}, {}
    for backend, result in packed.items():
        files[backend.value] = f"{backend.value}/{LADDER_STEM}{get_backend(backend).suffix}"
        (staging / files[backend.value]).write_bytes(result.program.data)
        packings[backend.value] = _packing(backend, result.program.data)
    threads = lowerer.verifier.threads
    with ThreadPoolExecutor(usable_cpus()) as pool:
        probes = {
            (a.id, a.backend): pool.submit(
                _memory,
                a.backend,
                staging / files[a.backend],
                size,
                threads,
                packed[BackendName(a.backend)].program.entry(entry_point_name(a.id)).planned_memory,
                lowerer.cache,
                entry_point_name(a.id),
            )
            for a in members
        }
        memories = {key: probe.result() for key, probe in probes.items()}
    step(f"memory measured for {len(members)} entry points of {len(packed)} ladder programs (separate processes)")
    resident = {  # what the open program holds, one figure per file: the largest of its entries' probes
        backend: max(memories[(a.id, a.backend)].host.program or 0 for a in members if a.backend == backend)
        for backend in laddered
    }
    shipped = []
    for a in artifacts:
        if a.backend not in laddered:
            shipped.append(a)
            continue
        one, program = staged[(a.id, a.backend)], packed[BackendName(a.backend)].program
        (staging / one.file).unlink()
        entry = program.entry(entry_point_name(a.id))
        probed = memories[(a.id, a.backend)]
        host = probed.host.model_copy(update={"program": resident[BackendName(a.backend)]})
        memory = probed.model_copy(update={"predicted": a.memory_bytes.predicted, "host": host})
        shipped.append(
            a.model_copy(
                update={
                    "file": files[a.backend],
                    "entry_point": entry.name,
                    "packing": packings[a.backend],
                    "bytes": len(program.data),
                    "sha256": hashlib.sha256(program.data).hexdigest(),
                    "memory_bytes": memory,
                    "budget_check": a.budget_check
                    and check_budget(one.rung, CostSource(a.budget_check.source), a.latency_ms, memory),
                    "delegation": Delegation(**dataclasses.asdict(entry.delegation)),
                    "input": a.input.model_copy(update={"layout": entry.input_layout}),
                }
            )
        )
    return shipped


def _packing(backend: BackendName, data: bytes) -> PackingName:
    """The manifest's ``packing`` of a ladder program, said in the terminal with the first conflict if any."""
    packing = get_backend(backend).packing(data)
    if packing.shared:
        step(f"ladder program {backend.value}: the runtime may pack each weight once for every entry point")
    elif packing.conflicts:
        count = len(packing.conflicts)
        step(
            f"ladder program {backend.value}: each entry point packs its own weights ({count} conflicts, first: "
            f"{packing.conflicts[0]})"
        )
    return "shared" if packing.shared else "own"


def _manifest(
    search: SearchResult,
    project: ProjectConfig,
    target: TargetConfig,
    artifacts: list[Artifact],
    dropped: list[Dropped],
) -> Manifest:
    return Manifest(
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


def _write_bundle_files(staging: Path, manifest: Manifest, search: SearchResult) -> None:
    """Stage 5: the manifest, the shim's index, the CKA matrix, the cost table, variants.json and the report."""
    write_manifest(staging, manifest)
    write_index(staging, manifest)
    np.save(staging / "cka.npy", search.cka)
    if search.costs is not None:
        save_table(search.costs, staging / COST_TABLE_NAME)
    (staging / "variants.json").write_text(json.dumps(variants_document(search), indent=2) + "\n")
    write_bundle_report(manifest, search, staging)


def run_build(
    project: ProjectConfig,
    target: TargetConfig,
    cache: Cache,
    out_dir: Path | None = None,
    ranks: Ranks = ALONE,
    executor: Executor = LOCAL,
) -> BuildResult:
    """Build the bundle for ``target`` into ``out_dir`` (default ``dist/<target name>``), atomically: nothing
    appears there unless every stage succeeds. Under several ``ranks``, this is rank 0's job; the others
    ``contribute`` to its search. ``executor`` runs the (rung, backend) lowering and verification jobs, the
    packing of ladder programs, and the lowering of a cost table's parts when the build profiles one."""
    start = time.perf_counter()
    bundle = out_dir or DEFAULT_BUNDLE_ROOT / target.name
    if target.memory_budgets_on_a_ladder:
        warn(
            f"BUDGET WARNING {target.name}: memory budgets choose each rung on its own file, but "
            f"{target.cost_backend.value} ships them in one ladder program that holds every rung; "
            f"for a memory ladder, lay {target.cost_backend.value} out per rung "
            f"(bundle: {{layout: {{{target.cost_backend.value}: per-rung}}}})"
        )
    search = run_search(project, target, cache, build=True, ranks=ranks, executor=executor)
    rungs = ladder(search)
    with staged_directory(bundle) as staging:
        lowerer = _lowerer(search, target, cache, staging, executor)
        rungs, tuned = _stitch_tuned(lowerer, search, target, rungs)
        staged = _lower_and_verify(lowerer, target, rungs, staging, tuned)
        measured = _measure(staged, search, target, project.data.input_size, cache, staging)
        standings = _standings(staged, measured, target)
        artifacts, dropped = _admit(staged, measured, standings, project, target, staging)
        artifacts = _pack(lowerer, staged, artifacts, project.data.input_size, staging, target.bundle)
        manifest = _manifest(search, project, target, artifacts, dropped)
        _write_bundle_files(staging, manifest, search)
    return BuildResult(bundle, manifest, search, time.perf_counter() - start)

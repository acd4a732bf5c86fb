"""The ``restnetc`` command line: typed options, ``--help`` everywhere, one-line errors, no tracebacks."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from restnetc.config.target import Backend as BackendName
from restnetc.errors import RestnetcError

if TYPE_CHECKING:
    from restnetc.cache import Cache
    from restnetc.config import ProjectConfig, TargetConfig
    from restnetc.distributed import Ranks

app = typer.Typer(
    name="restnetc",
    help="Stitch two pretrained vision models into a ladder of edge-deployable variants (ReStNet).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Tables stay readable when piped or logged (no terminal means rich would assume 80 columns).
stdout = Console(width=None if sys.stdout.isatty() else 140)
stderr = Console(stderr=True)
log = logging.getLogger("restnetc")


class _StderrLines(logging.Handler):
    """The ``restnetc`` logger on stderr: status lines after a cyan ``>``, warnings and errors after a yellow ``!``;
    each ends with the seconds since the command began, dimmed, so a long run shows where its time went."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.time()  # the clock LogRecord.created reads

    def emit(self, record: logging.LogRecord) -> None:
        mark = "[bold cyan]>[/]" if record.levelno < logging.WARNING else "[bold yellow]![/]"
        elapsed = f"[dim]({record.created - self.start:.0f} s)[/]"
        stderr.print(f"{mark} {escape(record.getMessage())} {elapsed}", highlight=False, soft_wrap=True)


def _version(show: bool) -> None:
    if show:
        from restnetc import __version__

        print(f"restnetc {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors; no progress bars")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also debug lines (what each wait is for)")] = False,
) -> None:
    """Options for every command: how much the compiler says on stderr (stdout carries only results)."""
    from restnetc.progress import show_on

    if not any(isinstance(handler, _StderrLines) for handler in log.handlers):
        log.addHandler(_StderrLines())
    log.propagate = False  # a toolchain's logging.basicConfig (ExecuTorch's partitioner) must not print it twice
    log.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)
    show_on(None if quiet else stderr)


def _library_defaults() -> None:
    """Undo ``_options`` when a command returns, so an in-process caller's logging sees the library as before."""
    from restnetc.progress import show_on

    for handler in [h for h in log.handlers if isinstance(h, _StderrLines)]:
        log.removeHandler(handler)
    log.propagate = True
    log.setLevel(logging.NOTSET)
    show_on(None)


TargetOption = Annotated[
    Path,
    typer.Option(
        "--target", "-t", help="Target YAML (device, runtimes, budgets), or a built-in target's name, e.g. cortex-a53"
    ),
]
TargetsOption = Annotated[
    list[Path],
    typer.Option(
        "--target",
        "-t",
        help="Target YAML (device, runtimes, budgets) or a built-in target's name; repeat it for one bundle per target",
    ),
]
ProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project YAML; default: ./restnetc.yaml if present, else the built-in demo"),
]
CacheOption = Annotated[
    Path | None, typer.Option("--cache-dir", help="Stage cache; default $RESTNETC_CACHE or ~/.cache/restnetc")
]
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Who runs the independent jobs (stitch fine-tuning, lowering, cost-table parts): local (worker "
        "processes here), ray (the Ray cluster ray.init finds, else a local one) or ray://HOST:PORT",
    ),
]


def _job_inputs(
    target: Path, project: Path | None, cache_dir: Path | None, no_cache: bool, writes: bool = True
) -> tuple[TargetConfig, ProjectConfig, Cache]:
    """Load and validate both config files (target first) and open the stage cache (read-only unless
    ``writes``: a data-parallel rank other than the first)."""
    from restnetc.config import load_target

    target_config = load_target(target)
    project_config, cache = _project_inputs(project, cache_dir, no_cache, writes, [(target_config, target)])
    return target_config, project_config, cache


def _project_inputs(
    project: Path | None, cache_dir: Path | None, no_cache: bool, writes: bool, targets: list[tuple[TargetConfig, Path]]
) -> tuple[ProjectConfig, Cache]:
    """Load and validate the project file and open the stage cache, naming the job's ``targets`` if ``writes``."""
    from restnetc.cache import Cache
    from restnetc.config import load_project
    from restnetc.models.factory import with_model_normalization

    project_config, project_path = load_project(project)
    project_config = with_model_normalization(project_config)
    if writes:
        named = ", ".join(f"{config.name} ({path})" for config, path in targets)
        log.info(f"project {project_config.name} ({project_path}), target{'s' * (len(targets) > 1)} {named}")
    return project_config, Cache.at(cache_dir, enabled=not no_cache, writable=writes)


@contextmanager
def _ranks() -> Iterator[Ranks]:
    """The command's data-parallel ranks (one unless ``torchrun`` launched it); only rank 0 shows progress."""
    from restnetc.distributed import joined
    from restnetc.progress import show_on

    with joined() as ranks:
        if not ranks.main:
            log.setLevel(logging.ERROR)
            show_on(None)
        yield ranks


def _leads(ranks: Ranks, project: ProjectConfig, build: TargetConfig | None, cache: Cache) -> bool:
    """Whether this rank runs the whole job (rank 0); any other first does its share of the stages they share
    (``build``: a build's, whose data check covers the target)."""
    from restnetc.pipeline.search import contribute

    if not ranks.main:
        contribute(project, build, cache, ranks)
    return ranks.main


JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout instead of tables")]


def _print_json(data: object) -> None:
    print(json.dumps(data, indent=2))


@app.command()
def doctor(as_json: JsonOption = False) -> None:
    """Report every toolchain component as found or missing, with versions and install hints."""
    from restnetc.doctor import SETUP_HINT, checks_ok, run_checks

    checks = run_checks()
    if as_json:
        _print_json([dataclasses.asdict(check) for check in checks])
        if not checks_ok(checks):
            raise typer.Exit(1)
        return
    table = Table(title="restnetc toolchain")
    for column in ("component", "status", "version", "used for"):
        table.add_column(column)
    for check in checks:
        missing = "[red]MISSING[/]" if check.required else "[yellow]missing, optional[/]"
        status = "[green]found[/]" if check.found else missing
        table.add_row(check.name, status, check.version, check.purpose)
    stdout.print(table)
    for check in checks:
        if not check.found:
            stdout.print(f"install {check.name}: {check.hint}", markup=False, highlight=False, soft_wrap=True)
    if not checks_ok(checks):
        stderr.print(f"[red]error:[/] required components are missing. {SETUP_HINT}")
        raise typer.Exit(1)


@app.command()
def search(
    target: TargetOption,
    project: ProjectOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory; default dist/<target>/search")
    ] = None,
    cache_dir: CacheOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage")] = False,
    executor: ExecutorOption = "local",
) -> None:
    """CKA search, stitch point per budget, stitching-layer fine-tuning; writes cka.npy, cka.png, variants.json.

    Under torchrun, the ranks share the CKA pass and stitch fine-tuning; rank 0 writes. Otherwise --executor
    trains the stitches (each on one thread) and lowers the parts of a cost table profiled for measured budgets."""
    from restnetc.pipeline.search import run_search
    from restnetc.reports.search_outputs import variants_table, write_search_outputs
    from restnetc.workers import executor_for

    jobs = executor_for(executor)
    with _ranks() as ranks:
        target_config, project_config, cache = _job_inputs(target, project, cache_dir, no_cache, ranks.main)
        if not _leads(ranks, project_config, None, cache):
            return
        jobs.open()
        result = run_search(project_config, target_config, cache, ranks=ranks, executor=jobs)
    out_dir = out or Path("dist") / target_config.name / "search"
    write_search_outputs(result, out_dir)
    stdout.print(variants_table(result))
    stdout.print(f"wrote {out_dir}/cka.npy, cka.png, variants.json in {result.seconds:.0f} s")


@app.command()
def diagnose(
    target: TargetOption,
    project: ProjectOption = None,
    rung: Annotated[list[str] | None, typer.Option("--rung", help="A rung id (repeatable); default every rung")] = None,
    backend: Annotated[
        list[str] | None, typer.Option("--backend", help="A backend (repeatable); default the target's")
    ] = None,
    images: Annotated[int, typer.Option("--images", min=1, help="Validation images to judge on")] = 512,
    cache_dir: CacheOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage")] = False,
) -> None:
    """Where int8 loses: each rung simulated in int8 with a backend's quantizer, then with each of its units kept
    in float alone (validation top-1 and logit SQNR against fp32)."""
    from restnetc.pipeline.diagnose import run_diagnosis
    from restnetc.reports.diagnosis_table import diagnosis_table

    target_config, project_config, cache = _job_inputs(target, project, cache_dir, no_cache)
    for result in run_diagnosis(project_config, target_config, cache, rung or (), backend or (), images):
        stdout.print(diagnosis_table(result.rung, result.diagnosis))


@app.command()
def sweep(
    project: ProjectOption = None,
    every: Annotated[
        int, typer.Option("--every", min=1, help="Stitch after every K-th block of each parent (and the last)")
    ] = 1,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory")] = Path("dist/sweep"),
    cache_dir: CacheOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage")] = False,
    executor: ExecutorOption = "local",
) -> None:
    """Stitch and fine-tune at a grid of points regardless of budgets; writes sweep.json (with the CKA-accuracy
    correlation) and sweep.png.

    --executor trains the points as jobs, each on one thread; under torchrun, the ranks train each point together."""
    from restnetc.cache import Cache
    from restnetc.config import load_project
    from restnetc.models.factory import with_model_normalization
    from restnetc.pipeline.search import run_sweep
    from restnetc.reports.sweep_outputs import write_sweep_outputs
    from restnetc.workers import executor_for

    jobs = executor_for(executor)
    project_config, project_path = load_project(project)
    project_config = with_model_normalization(project_config)
    with _ranks() as ranks:
        cache = Cache.at(cache_dir, enabled=not no_cache, writable=ranks.main)
        if not _leads(ranks, project_config, None, cache):
            return
        log.info(f"project {project_config.name} ({project_path})")
        jobs.open()
        result = run_sweep(project_config, cache, every, ranks, jobs)
    r = write_sweep_outputs(result, out)
    stdout.print(
        f"{len(result.points)} stitch points: CKA vs top-1 Pearson {r['pearson']:.3f} (p={r['pearson_p']:.2g}), "
        f"Spearman {r['spearman']:.3f} (p={r['spearman_p']:.2g})"
    )
    within = r["within_front"]
    if within["mean_spearman"] is not None:
        stdout.print(
            f"within a front block: mean Spearman {within['mean_spearman']:.3f} "
            f"over {len(within['spearman_by_front_block'])} front blocks"
        )
    stdout.print(f"wrote {out}/sweep.json, sweep.png in {result.seconds:.0f} s")


@app.command()
def build(
    target: TargetsOption,
    project: ProjectOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Bundle directory; default dist/<target>. With several targets: DIR/<target> each"
        ),
    ] = None,
    cache_dir: CacheOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage")] = False,
    executor: ExecutorOption = "local",
) -> None:
    """Search, then lower every variant and both parents with every backend into a verified bundle.

    Several --target build one bundle each, one after the other, sharing the stage cache (the parents and CKA
    are computed once) and the executor; every target file is checked before any work. Under torchrun, the
    ranks share the CKA pass and stitch fine-tuning; rank 0 builds and writes."""
    from restnetc.api import check_targets
    from restnetc.bundle.recommend import recommend
    from restnetc.pipeline.build import run_build
    from restnetc.reports.bundle_summary import bundle_table
    from restnetc.workers import executor_for

    jobs = executor_for(executor)
    with _ranks() as ranks:
        targets = _targets(target)
        project_config, cache = _project_inputs(project, cache_dir, no_cache, ranks.main, targets)
        check_targets(project_config, targets)
        if ranks.main:
            jobs.open()
        for target_config, path in targets:
            if len(targets) > 1 and ranks.main:
                log.info(f"target {target_config.name} ({path})")
            bundle = out / target_config.name if out is not None and len(targets) > 1 else out
            if not _leads(ranks, project_config, target_config, cache):
                continue
            result = run_build(project_config, target_config, cache, bundle, ranks, jobs)
            stdout.print(bundle_table(result.manifest))
            for recommendation in recommend(result.manifest):
                stdout.print(recommendation.sentence(), highlight=False, soft_wrap=True)
            artifacts = len(result.manifest.artifacts)
            stdout.print(f"wrote bundle {result.bundle} ({artifacts} artifacts) in {result.seconds:.0f} s")


def _targets(paths: list[Path]) -> list[tuple[TargetConfig, Path]]:
    """Every target file, loaded and checked; two may not share a name (a bundle is named after its target)."""
    from restnetc.config import load_target
    from restnetc.errors import ConfigError

    targets: list[tuple[TargetConfig, Path]] = []
    for path in paths:
        config = load_target(path)
        if same := [other for other_config, other in targets if other_config.name == config.name]:
            raise ConfigError(
                f"{path}: name: {config.name!r} is also the name of {same[0]}; each bundle is named after its "
                "target, so the targets of one build need different names"
            )
        targets.append((config, path))
    return targets


@app.command()
def profile(
    target: TargetOption,
    project: ProjectOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Cost table JSON; default tables/<target>.json")
    ] = None,
    cache_dir: CacheOption = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every stage")] = False,
    executor: ExecutorOption = "local",
) -> None:
    """Lower and time every part of both parents on this machine: the cost table for latency/memory budgets.

    Also writes the part artifacts to NAME.parts/ beside the table, for `bench plan --table` on a device. The
    parts may be lowered elsewhere (--executor ray); they are timed here.
    """
    from restnetc.budget.cost_table import parts_dir
    from restnetc.pipeline.costs import profile_target
    from restnetc.workers import executor_for

    jobs = executor_for(executor)
    target_config, project_config, cache = _job_inputs(target, project, cache_dir, no_cache)
    jobs.open()
    path = out or Path("tables") / f"{target_config.name}.json"
    table = profile_target(project_config, target_config, cache, path, jobs)
    parts = sum(len(m.all()) for m in table.models.values())
    stdout.print(
        f"wrote {path} ({parts} parts, {table.backend.value} {table.quantization.value}, {table.threads} threads, "
        f"profiled in {table.profiling_seconds:.0f} s) and {parts_dir(path)}/"
    )


@app.command()
def inspect(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory")],
    operators: Annotated[
        bool, typer.Option("--operators", help="Also count the operators each entry point calls, from its file")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Summarise a bundle and verify every file against the manifest (exit 1 on any mismatch).

    --json prints the manifest, each file's verified size and, with --operators, the operator counts."""
    from restnetc.api import inspect as inspect_bundle
    from restnetc.bundle.recommend import recommend
    from restnetc.reports.bundle_summary import bundle_table, operator_table

    found = inspect_bundle(bundle, operators=operators)
    if as_json:
        counts = found.operators or {}
        _print_json(
            {
                "bundle": str(found.bundle),
                "manifest": found.manifest.model_dump(mode="json"),
                "verified_sizes": found.sizes,
                "recommended": [
                    {
                        "backend": r.backend,
                        "budget": None if r.budget is None else r.budget.describe(),
                        "artifact": None if r.artifact is None else r.artifact.id,
                        "passed_over": None if r.passed_over is None else r.passed_over[0].id,
                    }
                    for r in recommend(found.manifest)
                ],
                "operators": [{"id": i, "backend": b, "counts": c} for (i, b), c in counts.items()] or None,
            }
        )
        return
    stdout.print(bundle_table(found.manifest))
    stdout.print(f"all {len(found.manifest.artifacts)} artifact files match the manifest (size and sha256)")
    if found.operators is not None:
        stdout.print(operator_table(found.manifest, found.operators))


MAX_MB = 1e12
"""The largest memory figure, MiB, the shim's CLI takes (larger ones would wrap its 64-bit byte counts)."""


@app.command()
def select(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory")],
    backend: Annotated[BackendName, typer.Option("--backend", help="The runtime to select for")] = BackendName.LITERT,
    available_mb: Annotated[
        float | None,
        typer.Option("--available-mb", min=0, max=MAX_MB, help="Memory to select for; default: probed now"),
    ] = None,
    headroom_mb: Annotated[
        float | None,
        typer.Option("--headroom-mb", min=0, max=MAX_MB, help="Kept free beside the rung; default: the shim's"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Which rung the device's runtime shim would run now (or with --available-mb), and why each other rung was
    not chosen: the C core's own selection, as ``restnet-shim select`` prints it. Exit 1 when nothing fits.

    --json prints what ``restnet-shim select --json`` prints."""
    from restnetc.runtime import DEFAULT_HEADROOM_MB, Bundle, probe_memory
    from restnetc.units import MIB

    for option, value in (("--available-mb", available_mb), ("--headroom-mb", headroom_mb)):
        if value is not None and not math.isfinite(value):
            raise typer.BadParameter(f"expected a finite number of MiB, got {value}", param_hint=option)
    if available_mb is None:
        memory = probe_memory()
        available = memory.available
    else:
        memory, available = None, int(available_mb * MIB)
    with Bundle(bundle) as opened:
        headroom = DEFAULT_HEADROOM_MB if headroom_mb is None else headroom_mb
        selection = opened.select(backend.value, available, headroom_mb=headroom)
    if as_json:
        _print_json(
            {
                "status": selection.status,
                "message": selection.message,
                "backend": backend.value,
                "available_bytes": selection.available,
                "memory_source": "given" if memory is None else memory.source,
                "chosen": None if selection.chosen is None else selection.chosen.id,
                "artifacts": [
                    {
                        "id": v.variant.id,
                        "backend": v.variant.backend,
                        "file": v.variant.file,
                        "bytes": v.variant.bytes,
                        "sha256": v.variant.sha256,
                        "memory_bytes": v.variant.memory_bytes,
                        "accuracy": round(v.variant.accuracy, 3),
                        "rank": v.variant.rank,
                        "params": v.variant.params,
                        "entry_point": v.variant.entry_point,
                        "verdict": v.verdict,
                        "reason": v.reason,
                    }
                    for v in selection.verdicts
                ],
            }
        )
    else:
        source = "given" if memory is None else f"from {memory.source}"
        stdout.print(f"memory: {selection.available / MIB:.1f} MiB available ({source})", markup=False)
        if selection.chosen is not None:
            stdout.print(f"chosen: {selection.chosen.id} ({selection.chosen.file})", markup=False)
        for verdict in selection.verdicts:
            if verdict.variant is not selection.chosen and verdict.variant.backend == backend.value:
                stdout.print(f"  {verdict.variant.id}: {verdict.verdict}: {verdict.reason}", markup=False)
    if selection.chosen is None:
        raise RestnetcError(f"{bundle}: {selection.message or f'no {backend.value} rung fits'}")


@app.command("size-check")
def size_check(
    bundle: Annotated[Path, typer.Argument(help="Bundle directory")],
    baseline: Annotated[Path, typer.Option("--baseline", help="Baseline JSON (committed in your repo)")],
    tolerance: Annotated[float, typer.Option("--tolerance", help="Allowed growth, percent")] = 1.0,
    tolerance_bytes: Annotated[
        int | None, typer.Option("--tolerance-bytes", help="Allowed growth in bytes (overrides --tolerance)")
    ] = None,
    update: Annotated[bool, typer.Option("--update", help="Rewrite the baseline from this bundle")] = False,
    as_json: JsonOption = False,
) -> None:
    """Compare artifact sizes on disk with a baseline; print a markdown table; exit 1 on a regression or on a
    file that does not match the manifest."""
    from restnetc.bundle.integrity import verify_files
    from restnetc.bundle.manifest import read_manifest
    from restnetc.bundle.size_check import compare, markdown_table, read_baseline, write_baseline

    manifest = read_manifest(bundle)
    sizes = verify_files(bundle, manifest)
    if update:
        write_baseline(baseline, str(manifest.target["name"]), sizes)
        stdout.print(f"baseline {baseline} updated from {bundle} ({len(sizes)} artifacts)")
        return
    rows = compare(read_baseline(baseline), sizes, tolerance, tolerance_bytes)
    if as_json:
        _print_json([{**dataclasses.asdict(row), "failed": row.failed} for row in rows])
    else:
        print(markdown_table(rows))
    failed = [r for r in rows if r.failed]
    if failed:
        allowed = f"{tolerance_bytes} bytes" if tolerance_bytes is not None else f"{tolerance}%"
        stderr.print(f"[red]error:[/] {len(failed)} artifact(s) failed the size check (tolerance {allowed})")
        raise typer.Exit(1)


bench_app = typer.Typer(help="On-device benchmarking with TFLite's benchmark_model.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("plan")
def bench_plan(
    bundle: Annotated[Path | None, typer.Argument(help="Bundle directory (or give --table)")] = None,
    device: Annotated[str, typer.Option("--device", help="adb, adb:SERIAL or ssh:[USER@]HOST")] = "adb",
    table: Annotated[
        Path | None, typer.Option("--table", help="Benchmark this cost table's parts instead of a bundle")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="Default: the target's threads")] = None,
    runs: Annotated[int, typer.Option("--runs", help="Timed runs per model")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", help="Warm-up runs per model")] = 1,
    cpu_mask: Annotated[str | None, typer.Option("--cpu-mask", help="taskset mask to pin big cores, e.g. f0")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Script path; default bench-<target>.sh")] = None,
) -> None:
    """Write a shell script that runs benchmark_model on a device for every .tflite of a bundle or cost table."""
    from restnetc.atomic import write_text_atomic
    from restnetc.bench.plan import BenchSettings, Device, Run, bundle_runs, plan_script

    if (bundle is None) == (table is None):
        raise RestnetcError("bench plan: give a BUNDLE directory or --table FILE (one of them)")
    if table is not None:
        from restnetc.budget.cost_table import load_table, parts_dir

        costs = load_table(table)
        source, name, default_threads = parts_dir(table), costs.target, costs.threads
        files = costs.files()
        if missing := [f for f in files if not (source / f).is_file()]:
            raise RestnetcError(f"{source}: part artifacts missing ({', '.join(missing[:3])}); run restnetc profile")
        planned = [Run(file) for file in files]
        ingest = f"restnetc bench ingest $LOGS/*.log --table {table}"
    else:
        from restnetc.bundle.manifest import read_manifest

        assert bundle is not None
        manifest = read_manifest(bundle)
        runtime = manifest.target.get("runtime")
        default_threads = int(runtime.get("threads", 1)) if isinstance(runtime, dict) else 1
        source, name, planned = bundle, str(manifest.target["name"]), bundle_runs(bundle, manifest)
        ingest = f"restnetc bench ingest $LOGS/*.log --bundle {bundle}"
    settings = BenchSettings(threads or default_threads, runs, warmup, cpu_mask)
    script = out or Path(f"bench-{name}.sh")
    write_text_atomic(script, plan_script(source, planned, name, Device.parse(device), settings, ingest))
    script.chmod(0o755)
    stdout.print(f"wrote {script} for {len(planned)} benchmark runs: run it, then {ingest.replace('$LOGS', 'logs')}")


@bench_app.command("run")
def bench_run(bundle: Annotated[Path, typer.Argument(help="Bundle directory")]) -> None:
    """Measure every artifact of a bundle on this machine again (latency and memory) and update its manifest."""
    from restnetc.bench.host_run import remeasure
    from restnetc.bundle.manifest import read_manifest, write_manifest
    from restnetc.bundle.runtime_index import write_index
    from restnetc.reports.bundle_summary import bundle_table

    manifest = remeasure(bundle, read_manifest(bundle))
    write_manifest(bundle, manifest)
    write_index(bundle, manifest)
    stdout.print(bundle_table(manifest))
    log.info(f"recorded host latency and memory of {len(manifest.artifacts)} artifacts in {bundle}/manifest.json")


@bench_app.command("ingest")
def bench_ingest(
    logs: Annotated[list[Path], typer.Argument(help="benchmark_model logs, one per model run")],
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="Write the figures into this bundle's manifest")
    ] = None,
    table: Annotated[
        Path | None, typer.Option("--table", help="Write the parts' device times into this cost table")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Parse benchmark_model logs (bare, INFO:, or logcat lines); optionally record them in a bundle or table."""
    from restnetc.bench.benchmark_log import read_benchmark_log

    parsed = [read_benchmark_log(path) for path in logs]
    if bundle is not None:
        from restnetc.bench.ingest import merge_device_figures
        from restnetc.bundle.manifest import read_manifest, write_manifest
        from restnetc.bundle.runtime_index import write_index

        merged = merge_device_figures(read_manifest(bundle), parsed)
        write_manifest(bundle, merged)
        write_index(bundle, merged)  # the shim's memory needs now come from the device
        log.info(f"recorded device latency and memory of {len(parsed)} artifact(s) in {bundle}/manifest.json")
    if table is not None:
        from restnetc.bench.ingest import merge_table_times
        from restnetc.budget.cost_table import load_table, save_table

        save_table(merge_table_times(load_table(table), parsed), table)
        log.info(f"{table}: now a device cost table ({len(parsed)} parts); use it as costs.table, source device")
    if as_json:
        _print_json([figures.model_dump(mode="json") for figures in parsed])
        return
    results = Table(title="benchmark_model results")
    for column in ("log", "graph", "threads", "inference ms", "first ms", "init ms", "peak MB", "delegated"):
        results.add_column(column)
    for run in parsed:
        delegated = ", ".join(f"{d.replaced_nodes}/{d.total_nodes} in {d.partitions}" for d in run.delegates) or "-"
        peak = "-" if run.peak_memory_mb is None else f"{run.peak_memory_mb:.1f}"
        results.add_row(
            run.source,
            run.graph or "-",
            str(run.threads or "-"),
            f"{run.inference_ms:.2f}",
            f"{run.first_inference_us / 1e3:.2f}",
            f"{run.init_us / 1e3:.1f}",
            peak,
            delegated,
        )
    stdout.print(results)


@app.command()
def families(pattern: Annotated[str, typer.Argument(help="Shell-style wildcard")] = "*") -> None:
    """List the registered model families (block adapters)."""
    from restnetc.models import list_families

    for name in list_families(pattern):
        stdout.print(name)


def main() -> None:
    """Console-script entry point: user errors become one line on stderr and exit status 1."""
    try:
        app(prog_name="restnetc")  # not click's guess from the launcher (``python -m ...``): completion names it
    except RestnetcError as exc:
        stderr.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]")
        sys.exit(130)
    finally:
        _library_defaults()

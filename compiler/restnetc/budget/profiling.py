"""Profiling a target's cost table on this machine: every part of both parents lowered alone, probed and timed.

Each part (stem, every block, head) is lowered with the target's backend and numeric format, calibrated on
the inputs it sees inside its parent for real images, in worker processes; then its peak memory is probed
in a separate process and all parts are timed together, runs interleaved (``measure.time_interleaved``). The
artifacts are kept in the cache (and can be written out for device profiling), so only a change of parents, data,
backend or tools profiles again.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from restnetc.atomic import staged_files
from restnetc.backends import WHOLE_MODEL, Ends, Lowered, get_backend
from restnetc.budget.cost_table import CostTable, ModelParts, PartFigures
from restnetc.budget.costs import measure
from restnetc.budget.measure import TimedEntry, probe_memory, time_entries
from restnetc.cache import Cache, stage_key, toolchain_versions, weights_digest
from restnetc.config.target import Backend as BackendName
from restnetc.config.target import Quantization
from restnetc.errors import BudgetError
from restnetc.host import usable_cpus
from restnetc.models import BlockModel
from restnetc.native_output import captured
from restnetc.progress import status, step
from restnetc.workers import LOCAL, Executor

WARMUP = 5
RUNS = 500
"""Parts take microseconds each: many more runs than a whole model needs, for a stable median (``WARMUP``
untimed runs each time a part opens for a block of them)."""
OVERHEAD = "overhead"
WHOLE = "whole"


@dataclass(frozen=True)
class PartJob:
    """One part to lower: its artifact name, module and the inputs it sees inside its parent."""

    name: str
    module: nn.Module
    inputs: torch.Tensor
    ends: Ends
    """Which of the part's ends are the model's own: the stem's input, the head's output, the whole model's."""


@dataclass(frozen=True)
class Settings:
    """What every part is lowered and timed with."""

    target: str
    backend: BackendName
    quantization: Quantization
    threads: int


def machine() -> str:
    """The CPU model and core count of this machine (cost tables are only valid where they were taken)."""
    with open("/proc/cpuinfo") as info:
        names = [line.split(":", 1)[1].strip() for line in info if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()} x{os.cpu_count()}"


def _parts(name: str, model: BlockModel, images: torch.Tensor) -> list[PartJob]:
    """Stem, blocks and head of ``model`` with the inputs each receives for ``images``, then the whole model."""
    jobs = []
    x = images
    with torch.no_grad():
        for label, module in (("stem", model.stem), *((f"block{k:02d}", b) for k, b in enumerate(model.blocks))):
            jobs.append(PartJob(f"{name}.{label}", module, x, Ends(label == "stem", False)))
            x = module(x)
        jobs.append(PartJob(f"{name}.head", model.head, x, Ends(False, True)))
    jobs.append(PartJob(f"{name}.{WHOLE}", model, images, WHOLE_MODEL))
    return jobs


def _lower(settings: Settings, job: PartJob) -> Lowered | str:
    backend = get_backend(settings.backend)
    with captured() as log:
        try:
            return backend.lower(job.module, job.inputs[:1], settings.quantization, job.inputs, ends=job.ends)
        except Exception as exc:  # any toolchain failure: keep the toolchain's words
            return f"{type(exc).__name__}: {exc}\n{log.tail()}"


def _artifacts(jobs: list[PartJob], settings: Settings, cache: Cache, executor: Executor) -> dict[str, bytes]:
    """Each part's artifact by name, from the cache or lowered as ``executor`` jobs (which write nothing)."""
    tools = toolchain_versions()
    keys = {
        job.name: stage_key(
            "part-artifact",
            settings.backend.value,
            settings.quantization.value,
            weights_digest(job.module),
            hashlib.sha256(job.inputs.numpy().tobytes()).hexdigest(),
            tools,
        )
        for job in jobs
    }
    found = {job.name: data for job in jobs if (data := cache.load_bytes(keys[job.name])) is not None}
    pending = [job for job in jobs if job.name not in found]
    lowered = executor.run_all(_lower, settings, pending, executor.slots(len(pending)))
    with (
        status(f"lowering {len(pending)} parts with {settings.backend.value} ({executor.name})"),
        closing(lowered),
    ):
        for index, outcome in lowered:
            name = pending[index].name
            if isinstance(outcome, str):
                raise BudgetError(f"profiling {settings.target}: part {name} could not be lowered: {outcome}")
            cache.save_bytes(keys[name], outcome.data)
            found[name] = outcome.data
    return found


def _file_name(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", part)


def profile(
    models: dict[str, BlockModel],
    images: torch.Tensor,
    settings: Settings,
    cache: Cache,
    out_dir: Path | None = None,
    executor: Executor = LOCAL,
) -> CostTable:
    """The cost table of ``models`` (by name) on this machine, cached; part artifacts are written to ``out_dir``.

    ``images`` (a few real task images) calibrate each part and feed the memory probes and timing runs. The
    parts are lowered as ``executor`` jobs; they are timed here, on the machine the table describes.
    """
    jobs = [job for name, model in models.items() for job in _parts(name, model, images)]
    one_op = nn.Sequential(nn.ReLU())
    ramp = torch.linspace(-1, 1, 16 * 16).reshape(1, 1, 16, 16).repeat(4, 1, 1, 1)
    jobs.append(PartJob(OVERHEAD, one_op, ramp, Ends(False, False)))
    identity = {name: weights_digest(model) for name, model in models.items()}
    images_digest = hashlib.sha256(images.numpy().tobytes()).hexdigest()
    key = stage_key("cost-table", identity, images_digest, settings.__dict__, machine(), toolchain_versions())
    try:
        table = CostTable.model_validate(cache.load_json(key))
        step(f"cost table for {settings.target}: cached ({len(jobs) - 1} programs on {table.machine})")
    except ValidationError:  # absent, or written by an older restnetc
        table = _measure(jobs, settings, cache, executor)
        cache.save_json(key, table.model_dump(mode="json"))
    if out_dir is not None:
        suffix = get_backend(settings.backend).suffix
        with staged_files(out_dir) as staging:
            for job, data in _artifacts(jobs, settings, cache, executor).items():
                (staging / f"{_file_name(job)}{suffix}").write_bytes(data)
    return table


def _measure(jobs: list[PartJob], settings: Settings, cache: Cache, executor: Executor) -> CostTable:
    start = time.perf_counter()
    artifacts = _artifacts(jobs, settings, cache, executor)
    backend = get_backend(settings.backend)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = {job.name: folder / f"{_file_name(job.name)}{backend.suffix}" for job in jobs}
        for name, path in paths.items():
            path.write_bytes(artifacts[name])
        with ThreadPoolExecutor(usable_cpus()) as pool:  # each probe is its own process
            probes = {
                job.name: pool.submit(
                    probe_memory, settings.backend.value, paths[job.name], tuple(job.inputs[:1].shape), 1, cache
                )
                for job in jobs
            }
            memory = {name: probe.result().peak_delta for name, probe in probes.items()}
        entries = {
            job.name: TimedEntry(settings.backend.value, paths[job.name], job.inputs[:1].numpy()) for job in jobs
        }
        samples = time_entries(entries, WARMUP, RUNS, settings.threads)
    ms = {name: float(np.median(values)) for name, values in samples.items()}
    macs = _macs(jobs)

    def figures(job: PartJob) -> PartFigures:
        name = job.name
        return PartFigures(
            ms=round(ms[name], 5),
            bytes=len(artifacts[name]),
            peak_bytes=memory[name],
            macs=macs[name],
            input_shape=tuple(job.inputs[:1].shape),
            file=paths[name].name,
        )

    by_model: dict[str, list[PartFigures]] = {}
    for job in jobs[:-1]:
        by_model.setdefault(job.name.rsplit(".", 1)[0], []).append(figures(job))
    table = CostTable(
        target=settings.target,
        backend=settings.backend,
        quantization=settings.quantization,
        threads=settings.threads,
        input_size=int(jobs[0].inputs.shape[-1]),
        source="host",
        machine=machine(),
        overhead=figures(jobs[-1]),
        models={name: ModelParts(stem=p[0], blocks=p[1:-2], head=p[-2], whole=p[-1]) for name, p in by_model.items()},
        profiling_seconds=round(time.perf_counter() - start, 1),
    )
    step(
        f"cost table for {settings.target}: {len(jobs) - 1} programs on {table.machine}, "
        f"{settings.backend.value} {settings.quantization.value}, {settings.threads} threads "
        f"({table.profiling_seconds:.0f} s)"
    )
    return table


def _macs(jobs: list[PartJob]) -> dict[str, int]:
    return {job.name: measure(job.module, job.inputs[:1]).macs for job in jobs}

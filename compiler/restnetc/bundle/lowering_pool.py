"""Lowering jobs run side by side in worker processes.

Most of a lowering is single-threaded Python (graph passes in ``torch.export``, PT2E and the delegates'
preprocessing), so on a machine with N cores N lowerings run in about the time of one. Workers are
spawned (never forked: the parent holds threads of the toolchains), run one thread each, and return the
artifact or the toolchain's own words on failure.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import torch
from torch import nn

from restnetc.backends import Lowered, get_backend
from restnetc.backends.native_output import captured
from restnetc.config.target import Backend as BackendName
from restnetc.config.target import Quantization


@dataclass(frozen=True)
class LoweringJob:
    """One model to lower with one backend (``label`` names it in progress and errors)."""

    label: str
    model: nn.Module
    backend: BackendName
    quantization: Quantization
    example: torch.Tensor
    calibration: torch.Tensor
    float_modules: tuple[str, ...]


def _lower(job: LoweringJob) -> Lowered | str:
    """The artifact, or a message naming the toolchain error (exceptions of native code may not pickle)."""
    backend = get_backend(job.backend)
    with captured() as log:
        try:
            return backend.lower(job.model, job.example, job.quantization, job.calibration, job.float_modules)
        except Exception as exc:  # any toolchain failure: keep the toolchain's words
            return f"lowering failed: {type(exc).__name__}: {exc}\n{log.tail()}"


def _single_thread() -> None:
    torch.set_num_threads(1)


def lower_all(jobs: Sequence[LoweringJob], workers: int | None = None) -> Iterator[tuple[int, Lowered | str]]:
    """Yield ``(index into jobs, artifact or error message)`` as each job finishes.

    ``workers`` defaults to the number of cores; with one worker or one job, lowering runs in this process.
    """
    count = min(len(jobs), workers or os.cpu_count() or 1)
    if count <= 1:
        for index, job in enumerate(jobs):
            yield index, _lower(job)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(count, mp_context=context, initializer=_single_thread)
    try:
        futures: dict[Future[Lowered | str], int] = {pool.submit(_lower, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:  # on an error or Ctrl-C, drop the jobs not started yet
        pool.shutdown(wait=True, cancel_futures=True)

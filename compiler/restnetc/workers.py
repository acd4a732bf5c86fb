"""Jobs run side by side in worker processes, each worker holding one copy of a shared state.

Most of lowering, quantization and verification is single-threaded Python (graph passes in
``torch.export``, PT2E, the delegates' preprocessing) or small-batch inference, so on a machine with N
cores N jobs run in about the time of one. Workers are spawned (never forked: the parent holds threads of
the toolchains), run one thread each, and receive the shared state once, when they start.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

import torch

State = TypeVar("State")
Job = TypeVar("Job")
Result = TypeVar("Result")

_state: list[Any] = []
"""In a worker process only: the state it was started with (a pool initializer can pass nothing else)."""


def _start(state: object) -> None:
    torch.set_num_threads(1)
    _state.append(state)


def _call(function: Callable[[Any, Job], Result], job: Job) -> Result:
    return function(_state[0], job)


def run_all(
    function: Callable[[State, Job], Result], state: State, jobs: Sequence[Job], workers: int
) -> Iterator[tuple[int, Result]]:
    """Yield ``(index into jobs, function(state, job))`` as each job finishes, in ``workers`` processes.

    ``function`` must be a module-level function; with one worker (or one job) it runs in this process.
    Exceptions raised by a job are re-raised here; on any exception or Ctrl-C, jobs not started are dropped.
    """
    count = min(len(jobs), workers)
    if count <= 1:
        for index, job in enumerate(jobs):
            yield index, function(state, job)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(count, mp_context=context, initializer=_start, initargs=(state,))
    try:
        futures: dict[Future[Result], int] = {pool.submit(_call, function, job): i for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

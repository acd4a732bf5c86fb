"""Independent jobs run side by side by an executor: worker processes on this machine, or tasks on a Ray cluster.

Most of lowering, quantization and verification is single-threaded Python (graph passes in
``torch.export``, PT2E, the delegates' preprocessing) or small-batch inference, so on a machine with N
cores N jobs run in about the time of one. Every executor runs ``function(state, job)`` for each job, in a
worker with one intra-op thread (or, for one local job, in this process), and yields the results as they
finish; the state travels once per worker (``local``: when a process starts) or once per cluster (``ray``:
one object in its store). Executors are registered by name; a job's exceptions reach the caller as the job
raised them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import torch

from restnetc.errors import RestnetcError
from restnetc.host import usable_cpus
from restnetc.progress import warnings_to_stderr
from restnetc.registry import Registry

State = TypeVar("State")
Job = TypeVar("Job")
Result = TypeVar("Result")

RAY_RETRIES = 2
"""Times Ray runs a job again when its worker died (a lost node, a process killed for memory); an exception a
job raises is not retried: the toolchains are deterministic."""

_state: list[Any] = []
"""In a worker process only: the state it was started with (a pool initializer can pass nothing else)."""


class Executor(Protocol):
    """Runs independent jobs and yields ``(index into jobs, function(state, job))`` as each finishes.

    ``function`` is a module-level function (or one reachable by name, such as a class's method). ``local``
    runs at most ``workers`` jobs at once (with one job or one worker, in this process); ``ray`` as many as the
    cluster has CPUs; ``slots`` is the ``workers`` to pass when the caller leaves the choice to the executor.
    On any exception, or when the caller closes the iterator early, jobs not started are dropped. ``remote``:
    jobs may run on other machines, so ``state`` must not name this machine's paths for writing.
    """

    @property
    def name(self) -> str:
        """The registered name."""
        ...

    @property
    def remote(self) -> bool:
        """Whether jobs may run on other machines."""
        ...

    def open(self) -> None:
        """Make sure jobs can run, before the caller's work begins: raise ``RestnetcError`` saying why they cannot
        (a cluster that cannot be joined). Idempotent; ``run_all`` opens too."""
        ...

    def slots(self, jobs: int) -> int:
        """How many of ``jobs`` run at once when the caller does not cap them (``run_all``'s ``workers``)."""
        ...

    def run_all(
        self, function: Callable[[State, Job], Result], state: State, jobs: Sequence[Job], workers: int
    ) -> Generator[tuple[int, Result], None, None]: ...


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block, as in every worker; the caller's count after it. Float
    sums on one thread come out in one order, so training inside the block repeats bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _start(state: object) -> None:
    torch.set_num_threads(1)
    warnings_to_stderr()
    _state.append(state)


def _call(function: Callable[[Any, Job], Result], job: Job) -> Result:
    return function(_state[0], job)


@dataclass(frozen=True)
class LocalPool:
    """Spawned worker processes on this machine (never forked: the parent holds threads of the toolchains)."""

    name: ClassVar[str] = "local"
    remote: ClassVar[bool] = False

    def open(self) -> None:
        """Nothing to join: worker processes start with the jobs."""

    def slots(self, jobs: int) -> int:
        """One job per CPU this process may use (``usable_cpus``)."""
        return min(jobs, usable_cpus())

    def run_all(
        self, function: Callable[[State, Job], Result], state: State, jobs: Sequence[Job], workers: int
    ) -> Generator[tuple[int, Result], None, None]:
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


def _ray_job(function: Callable[[Any, Job], Result], state: Any, job: Job) -> Result:
    torch.set_num_threads(1)
    return function(state, job)


def _connect(address: str | None) -> None:
    """Join the Ray cluster at ``address`` (or the one ``ray.init`` finds, else a new local one) unless this
    process already has; it stays joined until the process exits (Ray leaves the cluster then)."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "the cluster ray.init finds (RAY_ADDRESS) or a local one"
        raise RestnetcError(f"executor ray: cannot join {where}: {exc}") from None


@dataclass(frozen=True)
class RayTasks:
    """One Ray task per job (one CPU each) on the cluster at ``address`` (``ray://HOST:PORT`` for Ray Client),
    or, without one, on the cluster ``ray.init`` finds (``RAY_ADDRESS``, one started with ``ray start``) or a
    local one it starts; joined by ``open`` (or the first jobs) and kept for the next ones (see ``_connect``)."""

    address: str | None = None
    name: ClassVar[str] = "ray"
    remote: ClassVar[bool] = True

    def open(self) -> None:
        """Join the cluster (``_connect``)."""
        _connect(self.address)

    def slots(self, jobs: int) -> int:
        """All of them: the cluster queues what its CPUs cannot run yet."""
        return jobs

    def run_all(
        self, function: Callable[[State, Job], Result], state: State, jobs: Sequence[Job], workers: int
    ) -> Generator[tuple[int, Result], None, None]:
        if not jobs:
            return
        import ray
        from ray.exceptions import RayError, RayTaskError

        self.open()
        task: Any = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(_ray_job)
        pending: dict[Any, int] = {}
        try:
            shared = ray.put(state)
            pending = {task.remote(function, shared, job): i for i, job in enumerate(jobs)}
            while pending:
                (done,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(done)
                what = f"executor ray: job {index + 1} of {len(jobs)}"
                try:
                    result = ray.get(done)
                except RayTaskError as exc:  # the job raised: the caller sees its own exception
                    if isinstance(exc.cause, RestnetcError):
                        raise exc.cause from None
                    if isinstance(exc.cause, Exception):
                        exc.cause.add_note(f"{what}, on a Ray worker:\n{exc.traceback_str}")
                        raise exc.cause from None
                    raise RestnetcError(f"{what} failed: {exc}") from None
                except RayError as exc:  # a lost worker (after RAY_RETRIES), a cancelled task, a bad environment
                    raise RestnetcError(f"{what} failed ({type(exc).__name__}): {exc}") from None
                yield index, result
        finally:
            for reference in pending:
                with contextlib.suppress(RayError):
                    ray.cancel(reference)


LOCAL = LocalPool()


def _local(address: str | None) -> Executor:
    if address is not None:
        raise ValueError("the local executor takes no address")
    return LOCAL


def _ray(address: str | None) -> Executor:
    if importlib.util.find_spec("ray") is None:
        raise ValueError("Ray is not installed (pip install 'restnetc[ray]')")
    return RayTasks(None if address is None else f"ray://{address}")


EXECUTORS: Registry[Callable[[str | None], Executor]] = Registry("executor")
"""Executor factories by name; each takes the address after ``NAME://`` (None without one), ValueError if it
cannot use it."""
EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


def executor_for(spec: str) -> Executor:
    """The executor ``spec`` names: a registered name, optionally with ``://ADDRESS`` (``ray://HOST:10001``)."""
    name, separator, address = spec.partition("://")
    if separator and not address:
        raise RestnetcError(f"--executor {spec!r}: expected an address after '{name}://'")
    try:
        return EXECUTORS.get(name)(address if separator else None)
    except ValueError as exc:
        raise RestnetcError(f"--executor {spec!r}: {exc}") from None

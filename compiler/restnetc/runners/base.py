"""The run side of a backend: open its artifacts in its Python runtime and run them, in this process.

A ``Runtime`` imports its runtime package and none of restnetc's compiling side (no converter, quantizer or
model code), so a process that only runs artifacts (``budget.memory_probe``) loads no more than the runtime
does: a LiteRT probe starts in about 0.2 s. (ExecuTorch's Python runtime imports its own ``executorch.exir``,
4.7 s of its import; that is upstream's.) ``Backend.runtime`` is the compiling side's way to it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np


class Runner(Protocol):
    """A loaded artifact: ``runner(batch)`` maps ``[N, 3, S, S]`` float32 to ``[N, classes]`` float32 logits."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class Program(Protocol):
    """An artifact file open in its runtime: its entry points load from it without reading the file again."""

    def load(self, entry_point: str | None = None) -> Runner:
        """Entry point ``entry_point`` (default: the one entry point a single-model artifact has), ready to run."""
        ...


class Runtime(ABC):
    """One backend's runtime in this process. Subclasses implement the abstract methods."""

    def runs_on(self, threads: int) -> bool:
        """Whether entry points this process opens run on ``threads`` threads. A runtime whose thread pool is the
        process's may be sized otherwise (``claim_threads``); this default, for runtimes sized per program, says
        yes."""
        return True

    def claim_threads(self, threads: int) -> None:
        """Size this process's runtime so that every entry point runs on ``threads`` threads. Call it only in a
        process that has opened no program of this runtime (a fresh one): a runtime may keep its pool in loaded
        programs. RestnetcError if the runtime refuses. This default does nothing (runtimes sized per program)."""
        return None

    @abstractmethod
    def open(self, path: Path, threads: int) -> Program:
        """Open the artifact at ``path``, its entry points to run on ``threads`` threads where the runtime sizes
        each program (else on what ``runs_on`` tells); no entry point is loaded yet."""

    def load(self, path: Path, threads: int, entry_point: str | None = None) -> Runner:
        """Open the artifact at ``path`` and load its entry point ``entry_point`` (default as ``Program.load``)."""
        return self.open(path, threads).load(entry_point)

    @abstractmethod
    def invoker(
        self, path: Path, threads: int, example: np.ndarray, entry_point: str | None = None
    ) -> Callable[[], object]:
        """A call that runs entry point ``entry_point`` (default as ``load``) of the artifact at ``path`` once on
        ``example`` (float32, batch of one), already converted and set as its input: only the runtime's own work
        is left to time. The program stays open while the call is referenced and closes when it is dropped
        (``budget.measure.time_interleaved`` times each program alone on that)."""

"""ExecuTorch's runtime: ``.pte`` programs in ``executorch.runtime`` (XNNPACK delegate)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from executorch.extension.pybindings import portable_lib
from executorch.runtime import Method
from executorch.runtime import Runtime as Loader

from restnetc.errors import RestnetcError
from restnetc.runners.base import Runner, Runtime

METHOD = "forward"
"""The method of a single-model program (``torch.export``'s default)."""


class _Program:
    """A ``.pte`` loaded by the ExecuTorch runtime: its methods load on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.program = Loader.get().load_program(path)

    def method(self, name: str) -> Method:
        """Method ``name``, loaded; RestnetcError naming the program's methods if it has none of that name."""
        if name not in self.program.method_names:
            raise RestnetcError(
                f"{self.path}: no method {name!r} in the program (it has {sorted(self.program.method_names)})"
            )
        return self.program.load_method(name)

    def load(self, entry_point: str | None = None) -> Runner:
        method = self.method(entry_point or METHOD)

        def run(batch: np.ndarray) -> np.ndarray:
            outputs = [method.execute([torch.from_numpy(image)])[0] for image in np.split(batch, len(batch))]
            return torch.cat(outputs).numpy()

        return run


class ExecuTorchRuntime(Runtime):
    """One XNNPACK thread pool per process, which methods keep from their load on."""

    def runs_on(self, threads: int) -> bool:
        return bool(portable_lib._threadpool_get_thread_count() == threads)

    def claim_threads(self, threads: int) -> None:
        if not self.runs_on(threads):
            portable_lib._unsafe_reset_threadpool(threads)  # safe: no method holds the pool yet (the contract)
        if not self.runs_on(threads):
            count = portable_lib._threadpool_get_thread_count()
            raise RestnetcError(f"executorch: the thread pool stays at {count} threads, {threads} asked")

    def open(self, path: Path, threads: int) -> _Program:
        return _Program(path)

    def invoker(
        self, path: Path, threads: int, example: np.ndarray, entry_point: str | None = None
    ) -> Callable[[], object]:
        # The bare execution, as LiteRT's invoker times its bare invocation: the input is set once (the
        # pybindings' ``set_inputs``/``execute``, under ``Method.execute``, which converts inputs and clones
        # outputs on every call).
        method = _Program(path).method(entry_point or METHOD)._method
        method.set_inputs([torch.from_numpy(example)])
        execute: Callable[[], object] = method.execute
        return execute

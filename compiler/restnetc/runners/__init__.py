"""Each backend's runtime in a registry, by the backend's name: what opens and runs its artifacts (``base``).

A runtime registers a factory, run on first use; importing this package imports no runtime. The registered
names are the backends' (a test checks), and ``Backend.runtime`` finds its own here.
"""

from __future__ import annotations

from collections.abc import Callable

from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.registry import Registry
from restnetc.runners.base import Program, Runner, Runtime

__all__ = ["Program", "Runner", "Runtime", "get_runtime", "list_runtimes", "register_runtime"]

_FACTORIES = Registry[Callable[[], Runtime]]("runtime")


def register_runtime(name: str, factory: Callable[[], Runtime]) -> None:
    """Register ``factory`` (called on each ``get_runtime(name)``) under ``name``; ValueError if it is taken."""
    _FACTORIES.register(name, factory)


def list_runtimes() -> list[str]:
    """Every registered runtime name, sorted."""
    return sorted(_FACTORIES.names())


def get_runtime(name: BackendName | str) -> Runtime:
    """A new instance of the runtime registered under ``name``; ValueError naming the known ones if none is.

    What the runtime's import prints natively is kept off the terminal.
    """
    factory = _FACTORIES.get(name.value if isinstance(name, BackendName) else name)
    with captured():
        return factory()


def _executorch() -> Runtime:
    from restnetc.runners.executorch import ExecuTorchRuntime

    return ExecuTorchRuntime()


def _litert() -> Runtime:
    from restnetc.runners.litert import LiteRtRuntime

    return LiteRtRuntime()


register_runtime(BackendName.EXECUTORCH.value, _executorch)
register_runtime(BackendName.LITERT.value, _litert)

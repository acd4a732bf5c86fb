"""Backends in a registry: ExecuTorch (.pte) and LiteRT (.tflite), behind one small contract (``base``).

A backend registers a factory under its name; the factory runs on first use, since each backend pulls in its
whole toolchain. The registered names are the target schema's ``runtime.backends`` values (a test checks).
"""

from __future__ import annotations

from collections.abc import Callable

from restnetc.backends.base import (
    WHOLE_MODEL,
    Backend,
    DelegationReport,
    Ends,
    EntryPoint,
    Lowered,
    LoweredProgram,
    ModelCard,
    Packing,
    raw_pixels,
)
from restnetc.config.target import Backend as BackendName
from restnetc.native_output import captured
from restnetc.registry import Registry
from restnetc.shim_abi import TensorQuantization

__all__ = [
    "WHOLE_MODEL",
    "Backend",
    "DelegationReport",
    "Ends",
    "EntryPoint",
    "Lowered",
    "LoweredProgram",
    "ModelCard",
    "Packing",
    "TensorQuantization",
    "get_backend",
    "list_backends",
    "raw_pixels",
    "register_backend",
]

_FACTORIES = Registry[Callable[[], Backend]]("backend")


def register_backend(name: str, factory: Callable[[], Backend]) -> None:
    """Register ``factory`` (called on each ``get_backend(name)``) under ``name``; ValueError if it is taken."""
    _FACTORIES.register(name, factory)


def list_backends() -> list[str]:
    """Every registered backend name, sorted."""
    return sorted(_FACTORIES.names())


def get_backend(name: BackendName | str) -> Backend:
    """A new instance of the backend registered under ``name``; ValueError naming the known ones if none is.

    What the toolchain's imports print natively (absl, cpuinfo and optional-kernel messages) is kept off
    the terminal.
    """
    factory = _FACTORIES.get(name.value if isinstance(name, BackendName) else name)
    with captured():
        return factory()


def _executorch() -> Backend:
    from restnetc.backends.executorch import ExecuTorchBackend

    return ExecuTorchBackend()


def _litert() -> Backend:
    from restnetc.backends.litert import LiteRtBackend

    return LiteRtBackend()


register_backend(BackendName.EXECUTORCH.value, _executorch)
register_backend(BackendName.LITERT.value, _litert)

"""Backends in a registry: ExecuTorch (.pte) and LiteRT (.tflite), behind one small contract (``base``)."""

from __future__ import annotations

from restnetc.backends.base import Backend, DelegationReport, Lowered, Runner, TensorQuantization
from restnetc.config.target import Backend as BackendName

__all__ = ["Backend", "DelegationReport", "Lowered", "Runner", "TensorQuantization", "get_backend"]


def get_backend(name: BackendName) -> Backend:
    """The backend implementation for ``name`` (imported on first use: each pulls in its toolchain)."""
    if name is BackendName.EXECUTORCH:
        from restnetc.backends.executorch import ExecuTorchBackend

        return ExecuTorchBackend()
    from restnetc.backends.litert import LiteRtBackend

    return LiteRtBackend()

"""Backends in a registry: ExecuTorch (.pte) and LiteRT (.tflite), behind one small contract (``base``)."""

from __future__ import annotations

from restnetc.backends.base import Backend, DelegationReport, Lowered, Runner, TensorQuantization
from restnetc.backends.native_output import captured
from restnetc.config.target import Backend as BackendName

__all__ = ["Backend", "DelegationReport", "Lowered", "Runner", "TensorQuantization", "get_backend"]


def get_backend(name: BackendName) -> Backend:
    """The backend implementation for ``name``.

    Imported on first use, since each pulls in its whole toolchain; what those imports print natively
    (absl, cpuinfo and optional-kernel messages) is kept off the terminal.
    """
    with captured():
        if name is BackendName.EXECUTORCH:
            from restnetc.backends.executorch import ExecuTorchBackend

            return ExecuTorchBackend()
        from restnetc.backends.litert import LiteRtBackend

        return LiteRtBackend()

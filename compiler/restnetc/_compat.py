"""Import-time fix for PyPI's CUDA-linked torchvision beside the CPU-only torch wheel.

With torch 2.13.0+cpu, torchvision 0.28.0's ``_C`` extension cannot load, and
``torchvision/_meta_registrations.py`` then fails with
``RuntimeError: operator torchvision::nms does not exist`` (upstream pytorch/vision#9085).
timm imports torchvision at import time, so ``import timm`` fails too.

Just before torchvision is first imported (a ``sys.meta_path`` hook, so that importing restnetc itself,
and the device-side ``restnetc.runtime`` in particular, never imports torch), if its native library is
unusable, we define the two operators its meta registrations refer to as schema-only ops. Classification
models never call them. This is the only place in restnetc that deals with the problem.

Two import-time log warnings of the toolchain are also silenced here, since every process (the CLI and
its lowering workers) would print them: torchao's failure to load its CUDA kernels (irrelevant with
CPU-only torch) and torch's deprecation note about torchao registering an Enum with pytree.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library: torch.library.Library | None = None


def _torchvision_native_loads() -> bool:
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return True  # nothing to fix
    candidates = list(Path(spec.origin).parent.glob("_C*.so"))
    if not candidates:
        return False
    try:
        torch.ops.load_library(str(candidates[0]))
    except (OSError, RuntimeError):
        return False
    return True


def _install_torchvision_fix() -> None:
    """Define ``torchvision::nms``/``qnms`` schemas if torchvision's native ops cannot load (imports torch)."""
    global _library
    import torch

    if _library is not None or "torchvision" in sys.modules or _torchvision_native_loads():
        return
    _library = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        _library.define(schema)


class _BeforeTorchvision(importlib.abc.MetaPathFinder):
    """Runs the fix once, when ``torchvision`` is about to be imported; finds no module itself.

    It stays in ``sys.meta_path`` (removing itself while the import system iterates the list would make that
    lookup skip the next finder) and does nothing after its first run, or when torch is not installed (then
    torchvision cannot work either, and ``find_spec`` must still answer, e.g. for ``restnetc doctor``).
    """

    def __init__(self) -> None:
        self.done = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" and not self.done:
            self.done = True
            if importlib.util.find_spec("torch") is not None:
                _install_torchvision_fix()
        return None


def install_torchvision_fix() -> None:
    """Arrange for the fix to run just before torchvision's first import; nothing if it is imported already."""
    if "torchvision" not in sys.modules and not any(isinstance(f, _BeforeTorchvision) for f in sys.meta_path):
        sys.meta_path.insert(0, _BeforeTorchvision())


def quiet_toolchain_import_warnings() -> None:
    """Silence the two import-time warnings described above (only warnings of those two loggers)."""
    logging.getLogger("torchao").setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)

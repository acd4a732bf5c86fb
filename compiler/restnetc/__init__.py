"""restnetc: stitch two pretrained vision models into a ladder of edge-deployable variants.

The Python API is ``restnetc.build``, ``restnetc.search`` and ``restnetc.inspect`` (``restnetc.api``); they are
imported on first use, so ``import restnetc`` (and the device-side ``restnetc.runtime``) never imports torch.
"""

import importlib
import importlib.metadata
import logging
from typing import TYPE_CHECKING, Any

from restnetc._compat import install_torchvision_fix, quiet_toolchain_import_warnings

quiet_toolchain_import_warnings()
install_torchvision_fix()

# The installed distribution's version: pyproject.toml's ``version`` is the one definition.
try:
    __version__ = importlib.metadata.version("restnetc")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

# A library logs and lets its caller decide where lines go (the CLI shows them on stderr).
logging.getLogger("restnetc").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from restnetc.api import build as build
    from restnetc.api import inspect as inspect
    from restnetc.api import search as search

_API = ("build", "inspect", "search")


def __getattr__(name: str) -> Any:
    """``restnetc.build`` and the rest of the API, imported from ``restnetc.api`` on first use."""
    if name in _API:
        return getattr(importlib.import_module("restnetc.api"), name)
    raise AttributeError(f"module 'restnetc' has no attribute {name!r}")

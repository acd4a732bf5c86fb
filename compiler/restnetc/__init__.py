"""restnetc: stitch two pretrained vision models into a ladder of edge-deployable variants."""

import importlib.metadata

from restnetc._compat import install_torchvision_fix, quiet_toolchain_import_warnings

quiet_toolchain_import_warnings()
install_torchvision_fix()

# The installed distribution's version: pyproject.toml's ``version`` is the one definition.
try:
    __version__ = importlib.metadata.version("restnetc")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

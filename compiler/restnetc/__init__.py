"""restnetc: stitch two pretrained vision models into a ladder of edge-deployable variants."""

from restnetc._compat import install_torchvision_fix, quiet_toolchain_import_warnings

quiet_toolchain_import_warnings()
install_torchvision_fix()

__version__ = "0.1.0"

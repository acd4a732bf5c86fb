"""``restnetc doctor``: which toolchain components are present, their versions, and how to install the rest.

The Python packages checked are the ones restnetc's installed metadata declares (pyproject.toml's
``dependencies``), each with what it is used for from ``PURPOSES``; a test checks the two name the same
distributions, so a new dependency cannot be left out of the report.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from restnetc.config.project import FashionMnistData
from restnetc.metadata import canonical_name, declared_distributions, declared_extras, declared_requirement

SETUP_HINT = "scripts/bootstrap.sh installs every pinned component (apt packages, .venv, pip pins)"

PURPOSES = {
    "torch": "models, training, export (CPU build)",
    "torchvision": "image folders; imported by timm",
    "timm": "ResNet/VGG/ViT/DeiT/Swin families",
    "safetensors": ".safetensors checkpoints",
    "efficientnet-lite-pytorch": "EfficientNet-Lite family",
    "torchao": "PT2E int8 quantization (used by both backends)",
    "executorch": "ExecuTorch lowering and runtime (.pte)",
    "litert-torch": "LiteRT conversion (.tflite)",
    "ai-edge-litert": "LiteRT runtime and libLiteRt.so",
    "flatbuffers": ".tflite files written with each repeated vector once",
    "numpy": "arrays",
    "pydantic": "config, manifest and cost-table schemas",
    "pyyaml": "project and target files (safe loading)",
    "rich": "terminal output",
    "typer": "the command line",
    "matplotlib": "the report's plots",
    "pillow": "image-folder datasets (reading the images)",
    "scipy": "exact paired tests (McNemar)",
}
"""What each declared dependency is for, by canonical distribution name."""
EXTRA_PURPOSES = {
    "ray": "the ray executor (--executor ray, ray://HOST:PORT); optional",
    "demo": "EfficientNet-Lite ImageNet weights: source: efficientnet-lite without a checkpoint; optional",
    "mediapipe": "TFLite metadata in .tflite files (MediaPipe, Android model binding); optional",
}
"""What each optional extra is for, by extra name."""
INSTALL_ITSELF = "pip install --no-deps -e . in the checkout (scripts/bootstrap.sh does)"


@dataclass(frozen=True)
class Check:
    """One component: whether it is found, its version, what it is for, how to install it."""

    name: str
    required: bool
    found: bool
    version: str
    purpose: str
    hint: str


def _python_package(distribution: str, purpose: str, modules: dict[str, list[str]], extra: str | None = None) -> Check:
    """``distribution`` found when its metadata is installed and each top-level module it provides imports;
    required unless it belongs to an optional ``extra``."""
    found = all(importlib.util.find_spec(module) is not None for module in modules.get(distribution, []))
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        found, version = False, ""
    requirement = declared_requirement(distribution) if extra is None else f"restnetc[{extra}]"
    return Check(distribution, extra is None, found, version, purpose, f"pip install '{requirement}'")


def _python_packages() -> list[Check]:
    """restnetc itself, every dependency its metadata declares, then each optional extra's."""
    modules: dict[str, list[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        if not module.isidentifier():  # a file path, as mediapipe's record lists a top-level library
            continue
        for distribution in distributions:
            modules.setdefault(canonical_name(distribution), []).append(module)
    packages = [
        _python_package(name, PURPOSES.get(name, "a declared dependency"), modules) for name in declared_distributions()
    ]
    try:
        itself = Check("restnetc", True, True, importlib.metadata.version("restnetc"), "this package", "")
    except importlib.metadata.PackageNotFoundError:
        itself = Check("restnetc", True, False, "", "this package (its metadata lists the rest)", INSTALL_ITSELF)
    optional = [
        _python_package(name, EXTRA_PURPOSES.get(extra, f"optional extra {extra}"), modules, extra)
        for extra, names in declared_extras().items()
        for name in names
    ]
    return [itself, *packages, *optional]


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
        *_python_packages(),
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

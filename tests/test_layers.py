"""The import contracts (``[tool.importlinter]`` in pyproject.toml) hold, and a forbidden import breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _lint(package_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's contract on the ``restnetc`` package under ``package_root``.

    Run without ``site`` (``-S``), the venv's packages on the path after ``package_root``: the editable install's
    import hook (a ``.pth`` file) would otherwise serve the checkout's ``restnetc`` whatever the path says."""
    packages = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package_root), *packages])}
    command = [sys.executable, "-S", "-c", LINT_IMPORTS, "--config", REPO / "pyproject.toml", "--no-cache"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_package_imports_only_downward() -> None:
    result = _lint(REPO / "compiler")
    assert result.returncode == 0 and "3 kept, 0 broken" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        ("bundle/ladder.py", "from restnetc.pipeline import build", "restnetc.bundle is not allowed to import"),
        ("cache.py", "from restnetc.budget import measure", "restnetc.cache is not allowed to import"),
        ("shim_abi.py", "from restnetc import runtime", "restnetc.shim_abi is not allowed to import"),
        ("runtime.py", "import torch", "restnetc.runtime is not allowed to import torch"),
        ("runtime.py", "from restnetc.bundle import manifest", "restnetc.runtime is not allowed to import pydantic"),
        ("runners/litert.py", "import litert_torch", "restnetc.runners is not allowed to import litert_torch"),
        ("runners/executorch.py", "import torchao", "restnetc.runners is not allowed to import torchao"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, added: str, broken: str) -> None:
    shutil.copytree(REPO / "compiler" / "restnetc", tmp_path / "restnetc", ignore=shutil.ignore_patterns("*.so"))
    source = tmp_path / "restnetc" / module
    source.write_text(source.read_text() + f"\n{added}  # noqa: E402, F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and broken in result.stdout, result.stdout[-2000:]

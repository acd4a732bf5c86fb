"""The import contract (``[tool.importlinter]`` in pyproject.toml) holds, and an upward import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(package_root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports with the repository's contract on the ``restnetc`` package under ``package_root``."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    command = [LINT_IMPORTS, "--config", REPO / "pyproject.toml", "--no-cache"]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_package_imports_only_downward() -> None:
    result = _lint(REPO / "compiler")
    assert result.returncode == 0 and "1 kept, 0 broken" in result.stdout, result.stdout[-2000:]


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(REPO / "compiler" / "restnetc", tmp_path / "restnetc", ignore=shutil.ignore_patterns("*.so"))
    ladder = tmp_path / "restnetc" / "bundle" / "ladder.py"
    ladder.write_text(ladder.read_text() + "\nfrom restnetc.pipeline import build  # noqa: E402, F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0 and "restnetc.bundle is not allowed to import restnetc.pipeline" in result.stdout

"""The stage cache's keys: restnetc's own source is an input of every stage."""

from __future__ import annotations

import shutil
from pathlib import Path

from restnetc.cache import PACKAGE, source_digest


def test_an_edited_compiler_source_changes_the_source_digest(tmp_path: Path) -> None:
    copy = tmp_path / "restnetc"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(copy) == source_digest(PACKAGE)
    lowering = copy / "bundle" / "lowering.py"
    lowering.write_text(lowering.read_text() + "\n# an edit\n")
    assert source_digest(copy) != source_digest(PACKAGE)

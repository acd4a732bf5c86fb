"""Atomic bundle directories: build in a staging sibling, then swap it into place.

The previous bundle stays intact until the new one is complete: on any failure or Ctrl-C the staging
directory is removed and nothing else changes. The swap is two renames on one filesystem (old aside, new in);
if the second fails, the old bundle is renamed back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty staging directory; on normal exit it replaces ``final``, otherwise it is deleted."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
        _swap(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, final: Path) -> None:
    os.chmod(staging, 0o755)
    if not final.exists():
        os.rename(staging, final)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.previous-", dir=final.parent))
    aside.rmdir()
    os.rename(final, aside)
    try:
        os.rename(staging, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)

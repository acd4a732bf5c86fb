"""Checking a bundle against its manifest: every file present, inside the bundle, and a regular file whose size
(``fstat``) and sha256 (read from the file) on disk are the manifest's; the manifest's figures are never trusted."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from restnetc.bundle.manifest import Artifact, BundleError, Manifest, safe_path


@dataclass(frozen=True)
class FileCheck:
    """One artifact file measured on disk: its size (None when unreadable) and ``problem`` (None when it matches)."""

    file: str
    size: int | None
    problem: str | None


def check_files(bundle: Path, manifest: Manifest) -> list[FileCheck]:
    """One check per artifact: outside the bundle, missing, not a regular file, wrong size, or wrong sha256. A
    file that several artifacts name (a ladder program) is read and hashed once."""
    readings = {file: _read(bundle, file) for file in {artifact.file for artifact in manifest.artifacts}}
    return [_check(artifact, readings[artifact.file]) for artifact in manifest.artifacts]


def verify_files(bundle: Path, manifest: Manifest) -> dict[str, int]:
    """``{artifact file: bytes on disk}``; BundleError listing every file that does not match the manifest."""
    checks = check_files(bundle, manifest)
    if problems := [c for c in checks if c.problem is not None]:
        raise BundleError("; ".join(f"{bundle / c.file}: {c.problem}" for c in problems))
    return {c.file: c.size for c in checks if c.size is not None}


_MISSING = "missing"


def _read(bundle: Path, file: str) -> tuple[int, str] | str:
    """Size and sha256 of the bundle's regular file ``file``, or what keeps it from being measured."""
    try:
        measured = _measure(safe_path(bundle, file))
    except BundleError as exc:
        return str(exc)
    except FileNotFoundError:
        return _MISSING
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return "not a regular file" if measured is None else measured


def _check(artifact: Artifact, reading: tuple[int, str] | str) -> FileCheck:
    """``artifact`` against its file's ``reading`` (``_read``)."""
    if isinstance(reading, str):
        missing = f"missing (manifest says {artifact.bytes} bytes)"
        return FileCheck(artifact.file, None, missing if reading == _MISSING else reading)
    size, digest = reading
    problem: str | None
    if size != artifact.bytes:
        problem = f"{size} bytes on disk, manifest says {artifact.bytes}"
    elif digest != artifact.sha256:
        problem = f"sha256 does not match the manifest ({digest} on disk, manifest says {artifact.sha256})"
    else:
        problem = None
    return FileCheck(artifact.file, size, problem)


def _measure(path: Path) -> tuple[int, str] | None:
    """Size and sha256 of the regular file at ``path`` (None for anything else, which is never read)."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:  # a FIFO must not block the check
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return info.st_size, hashlib.file_digest(handle, "sha256").hexdigest()

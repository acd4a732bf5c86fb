"""Checking a bundle against its manifest: every file present, inside the bundle, with its size and sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from restnetc.bundle.manifest import Manifest, safe_path


@dataclass(frozen=True)
class FileCheck:
    """The verdict for one artifact file (``problem`` is None when it matches)."""

    file: str
    problem: str | None


def check_files(bundle: Path, manifest: Manifest) -> list[FileCheck]:
    """One check per artifact: missing, outside the bundle, wrong size, or wrong sha256."""
    checks = []
    for artifact in manifest.artifacts:
        problem = None
        try:
            path = safe_path(bundle, artifact.file)
        except Exception as exc:  # BundleError: a path that escapes the bundle
            checks.append(FileCheck(artifact.file, str(exc)))
            continue
        if not path.is_file():
            problem = "missing"
        else:
            data = path.read_bytes()
            if len(data) != artifact.bytes:
                problem = f"size {len(data)} bytes, manifest says {artifact.bytes}"
            elif hashlib.sha256(data).hexdigest() != artifact.sha256:
                problem = "sha256 does not match the manifest"
        checks.append(FileCheck(artifact.file, problem))
    return checks

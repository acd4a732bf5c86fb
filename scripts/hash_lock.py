"""Writes each pin of requirements.lock with the sha256 of every file an index serves for it (pip's hash mode).

Usage: .venv/bin/python scripts/hash_lock.py [--check]

For each ``name==version`` line: every file of that release on PyPI (its JSON simple API: all platforms, so the
lock installs on other Linux machines and architectures), and every file for it in the indexes and find-links
pip is configured with here (``pip config``). Each hash comes from the index's listing or, for a local file
without one, from the file itself. A pin that a local source serves as a labelled build (torch ``2.13.0+cpu``,
whose public home download.pytorch.org is out of reach here) takes that build's hashes alone: PyPI's
``torch==2.13.0`` is the CUDA build, and pip would prefer a file whose hash its index lists over an unlisted local
one. Elsewhere, the CPU build of torch is installed first (README), and pip leaves an installed pin alone.
``--check`` exits 1 when the lock on disk differs from what would be written (a pin edited without its hashes).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
PYPI = "https://pypi.org/simple/"
_LINK = re.compile(r'<a href="([^"]+)"')


def _release(filename: str) -> tuple[str, Version] | None:
    """(normalised name, version) of a wheel or sdist file name, or None."""
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        else:
            name, version = parse_sdist_filename(filename)
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return name, version


def _of(filename: str, name: str, version: Version) -> bool:
    """The file is a build of ``name==version`` (PEP 440: a local label such as ``+cpu`` matches too)."""
    release = _release(filename)
    return release is not None and release[0] == name and Version(release[1].public) == version


def _pypi_hashes(name: str, version: Version) -> set[str]:
    request = urllib.request.Request(PYPI + name + "/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
    except urllib.error.HTTPError as error:
        if error.code == 404:  # not on PyPI: only a local source serves it
            return set()
        raise
    return {f["hashes"]["sha256"] for f in files if _of(f["filename"], name, version)}


def _local_links() -> list[tuple[Path, str | None]]:
    """(local path, sha256 from the listing or None) of every file pip's local sources list."""
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    values: dict[str, list[str]] = {}  # every scope's value (pip prints each as a Python repr, newlines escaped)
    for key, value in re.findall(r"^\S*?\.?([\w-]+)=('.*')$", config, re.MULTILINE):
        values.setdefault(key, []).extend(ast.literal_eval(value).split())
    links: list[tuple[Path, str | None]] = []
    for index in values.get("index-url", []) + values.get("extra-index-url", []):
        root = Path(urlparse(index).path)
        for page in root.glob("*/index.html") if index.startswith("file:") else ():
            for href in _LINK.findall(page.read_text()):
                url, _, fragment = urljoin(page.as_uri(), href).partition("#sha256=")
                links.append((Path(unquote(urlparse(url).path)), fragment or None))
    for directory in values.get("find-links", []):
        links.extend((path, None) for path in Path(directory).glob("*") if path.is_file())
    return links


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hashed_lock(text: str) -> str:
    """``text`` (a lock, hashed or not) with each pin followed by its ``--hash`` options, sorted."""
    pins = [line.split(" ", 1)[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    links = _local_links()
    out = []
    for pin in pins:
        name, version = canonicalize_name(pin.partition("==")[0]), Version(pin.partition("==")[2])
        local = {path: listed or _sha256(path) for path, listed in links if _of(path.name, name, version)}
        labelled = {digest for path, digest in local.items() if (release := _release(path.name)) and release[1].local}
        # a local build (torch's +cpu) is what the lock installs; PyPI's files for the version (CUDA) are not
        hashes = labelled or _pypi_hashes(name, version) | set(local.values())
        if not hashes:
            raise SystemExit(f"requirements.lock: no index serves {pin}")
        out.append(" \\\n".join([pin, *(f"    --hash=sha256:{h}" for h in sorted(hashes))]))
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the lock's hashes are not up to date")
    args = parser.parse_args()
    current = LOCK.read_text()
    wanted = hashed_lock(current)
    if args.check:
        return int(wanted != current)
    LOCK.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())

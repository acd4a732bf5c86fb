"""What restnetc declares about itself in its installed package metadata (pyproject.toml's ``dependencies``).

Install hints name a requirement exactly as declared there, so no version is written twice in the code.
"""

from __future__ import annotations

import importlib.metadata
import re


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_requirement(distribution: str) -> str:
    """``distribution``'s requirement as restnetc declares it (``torch==2.13.0``, ``numpy<3,>=2``), without
    markers; just the name when restnetc's metadata is missing or does not list it."""
    try:
        requirements = importlib.metadata.requires("restnetc") or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    for line in requirements:
        spec = line.split(";", 1)[0].replace(" ", "")
        name = re.split(r"[<>=!~\[(]", spec, maxsplit=1)[0]
        if _canonical(name) == _canonical(distribution):
            return spec
    return distribution

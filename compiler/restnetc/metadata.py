"""What restnetc declares about itself in its installed package metadata (pyproject.toml's ``dependencies``).

Install hints name a requirement exactly as declared there, so no version is written twice in the code.
"""

from __future__ import annotations

import importlib.metadata
import re


def canonical_name(name: str) -> str:
    """A distribution name as packaging compares them: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, str]:
    """Each declared requirement without markers (``torch==2.13.0``), by its distribution's canonical name;
    optional extras left out."""
    try:
        requirements = importlib.metadata.requires("restnetc") or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    specs = [line.split(";", 1)[0].replace(" ", "") for line in requirements if "extra ==" not in line]
    return {canonical_name(re.split(r"[<>=!~\[(]", spec, maxsplit=1)[0]): spec for spec in specs}


def declared_extras() -> dict[str, tuple[str, ...]]:
    """The distributions of each optional extra (``ray``), canonical names in declaration order, by extra."""
    try:
        requirements = importlib.metadata.requires("restnetc") or []
    except importlib.metadata.PackageNotFoundError:
        requirements = []
    extras: dict[str, tuple[str, ...]] = {}
    for line in requirements:
        if match := re.search(r"""extra\s*==\s*["']([^"']+)["']""", line):
            name = canonical_name(re.split(r"[<>=!~\[(; ]", line, maxsplit=1)[0])
            extras[match.group(1)] = (*extras.get(match.group(1), ()), name)
    return extras


def declared_distributions() -> tuple[str, ...]:
    """The distributions restnetc depends on, canonical names in declaration order (empty when not installed)."""
    return tuple(_declared())


def declared_requirement(distribution: str) -> str:
    """``distribution``'s requirement as restnetc declares it (``torch==2.13.0``, ``numpy<3,>=2``), without
    markers; just the name when restnetc's metadata is missing or does not list it."""
    return _declared().get(canonical_name(distribution), distribution)

"""Human-readable quantities in config files: counts (3.6M), bytes (24MB, 1GiB) and durations (12ms).

Conventions, stated once: K/M/G/T are decimal (10^3...) for counts and bytes; KiB/MiB/GiB are binary.
A bare number is a plain count, megabytes (10^6 bytes) for memory, and milliseconds for latency.
"""

from __future__ import annotations

import re

_NUMBER = r"(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_COUNT_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BYTE_SCALE = {
    "b": 1.0,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "kib": 2.0**10,
    "mib": 2.0**20,
    "gib": 2.0**30,
}
_TIME_SCALE_MS = {"": 1.0, "ms": 1.0, "us": 1e-3, "s": 1e3}


def _split(text: str, units: dict[str, float], what: str, example: str) -> float:
    match = re.fullmatch(_NUMBER + r"\s*(?P<unit>[A-Za-z]*)", text.strip())
    unit = match.group("unit").lower() if match else None
    if match is None or unit not in units:
        raise ValueError(f"expected {what} like {example}, got {text!r}")
    return float(match.group("value")) * units[unit]


def _positive(value: float, text: object) -> float:
    if not value > 0:
        raise ValueError(f"expected a positive quantity, got {text!r}")
    return value


def parse_count(value: object) -> float:
    """Parse a count: ``3.6M`` -> 3.6e6, ``150K`` -> 1.5e5, ``2500000`` -> 2.5e6."""
    if isinstance(value, bool):
        raise ValueError(f"expected a count like 3.6M, 150K or 2500000, got {value!r}")
    if isinstance(value, int | float):
        return _positive(float(value), value)
    if isinstance(value, str):
        return _positive(_split(value, _COUNT_SCALE, "a count", "3.6M, 150K or 2500000"), value)
    raise ValueError(f"expected a count like 3.6M, 150K or 2500000, got {value!r}")


def parse_bytes(value: object) -> float:
    """Parse a memory size into bytes: ``24MB`` -> 24e6, ``1GiB`` -> 2^30, bare ``24`` -> 24 MB."""
    example = "24MB, 512MiB or 1GB"
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size like {example}, got {value!r}")
    if isinstance(value, int | float):
        return _positive(float(value) * 1e6, value)
    if isinstance(value, str):
        stripped = value.strip()
        text = stripped + "MB" if re.fullmatch(_NUMBER, stripped) else stripped
        return _positive(_split(text, _BYTE_SCALE, "a memory size", example), value)
    raise ValueError(f"expected a memory size like {example}, got {value!r}")


def parse_milliseconds(value: object) -> float:
    """Parse a duration into milliseconds: ``12ms`` -> 12, ``0.5s`` -> 500, bare ``12`` -> 12."""
    example = "12ms, 0.5s or 12"
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like {example}, got {value!r}")
    if isinstance(value, int | float):
        return _positive(float(value), value)
    if isinstance(value, str):
        return _positive(_split(value, _TIME_SCALE_MS, "a duration", example), value)
    raise ValueError(f"expected a duration like {example}, got {value!r}")


def format_count(value: float) -> str:
    """Format a count compactly: 3612345 -> '3.61M'."""
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"

"""Per-image top-1 correctness as persisted text: one character per image in the split's order, ``1`` right and
``0`` wrong. Records that outlive a build (the stage cache, the manifest) keep it so that paired comparisons
between artifacts can be made later on the same images."""

from __future__ import annotations

import numpy as np

CORRECTNESS_PATTERN = r"^[01]*$"
"""What a correctness text may hold."""


def correctness_text(correct: np.ndarray) -> str:
    """A one-dimensional bool array as correctness text."""
    return "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool))


def correctness_flags(text: str) -> np.ndarray:
    """Correctness text as a bool array (for ``compare_paired``); ValueError on any character but 0 and 1."""
    codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    if np.any((codes != ord("0")) & (codes != ord("1"))):
        raise ValueError("correctness text holds a character other than 0 and 1")
    flags: np.ndarray = codes == ord("1")
    return flags

"""Confidence intervals for top-1 accuracy, alone and paired, in percent.

Both take correctness counts on one fixed set of images, so they describe the uncertainty that comes from the
*finite sample of images* (would the figure hold on other images from the same source?), not run-to-run noise:
the artifacts are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _wilson(correct: int, total: int, confidence: float) -> tuple[float, float]:
    """The Wilson score interval of ``correct / total`` as proportions in [0, 1]."""
    ci = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def wilson_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of the accuracy ``correct / total``, in percent: ``(low, high)``.

    Unlike the normal (Wald) interval it stays inside [0, 100], is not empty at 0 or 100 %, and keeps close to
    its nominal coverage for small ``total``. It always contains ``100 * correct / total`` and narrows as
    ``total`` grows at a fixed accuracy. ValueError unless ``0 <= correct <= total``, ``total >= 1`` and
    ``0 < confidence < 1``.
    """
    if isinstance(correct, bool) or isinstance(total, bool):
        raise ValueError("correct and total must be counts, not booleans")
    if total < 1 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total >= 1, got correct={correct}, total={total}")
    _check_confidence(confidence)
    low, high = _wilson(int(correct), int(total), confidence)
    return 100.0 * low, 100.0 * high


@dataclass(frozen=True)
class PairedComparison:
    """Model A against model B on the same images, in the same order.

    ``difference``: accuracy of A minus accuracy of B, percentage points.
    ``interval``: confidence interval of that difference, points (Newcombe's hybrid score interval for paired
    proportions; see ``compare_paired``).
    ``a_only`` / ``b_only``: discordant images, right only for A / only for B (``difference`` is
    ``100 * (a_only - b_only) / images``).
    ``p_value``: exact two-sided McNemar test of "A and B are equally accurate" (a binomial test of ``a_only``
    among ``a_only + b_only`` discordant images, at 1/2); 1.0 when there is no discordant image.
    """

    difference: float
    interval: tuple[float, float]
    a_only: int
    b_only: int
    p_value: float


def _paired_interval(both: int, a_only: int, b_only: int, neither: int, confidence: float) -> tuple[float, float]:
    """Newcombe's (1998) hybrid score interval ("method 10", square-and-add) for p_A - p_B, as proportions.

    The Wilson intervals of both marginal accuracies are combined with the estimated correlation between
    them (with Newcombe's adjustment of the cross product), as in Fagerland, Laake & Veierød, *Statistical
    Analysis of Contingency Tables* (2017), chapter 8, which recommends it over the paired Wald interval.
    """
    n = both + a_only + b_only + neither
    p_a, p_b = (both + a_only) / n, (both + b_only) / n
    low_a, high_a = _wilson(both + a_only, n, confidence)
    low_b, high_b = _wilson(both + b_only, n, confidence)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    phi = 0.0
    if margins > 0:
        cross = both * neither - a_only * b_only
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    difference = p_a - p_b
    below = (p_a - low_a) ** 2 + (high_b - p_b) ** 2 - 2 * phi * (p_a - low_a) * (high_b - p_b)
    above = (high_a - p_a) ** 2 + (p_b - low_b) ** 2 - 2 * phi * (high_a - p_a) * (p_b - low_b)
    return difference - math.sqrt(max(below, 0.0)), difference + math.sqrt(max(above, 0.0))


def compare_paired(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> PairedComparison:
    """Compare two models' per-image top-1 correctness (bool arrays, same images in the same order).

    The interval of the difference is Newcombe's hybrid score interval for paired proportions rather than the
    paired normal (Wald) interval ``mean(d) +- z * sd(d) / sqrt(n)``: rungs of one ladder agree on most images,
    so the discordant counts that drive the Wald interval are small, where it under-covers and collapses to a
    zero width when the two disagree on no image; the score interval does neither and stays within
    [-100, 100]. Near the 5 % boundary the interval and the exact McNemar ``p_value`` can disagree (they are
    different procedures); decisions use ``p_value``.

    ValueError unless both arrays are one-dimensional bool arrays of the same, non-zero length, and
    ``0 < confidence < 1``.
    """
    a, b = np.asarray(correct_a), np.asarray(correct_b)
    if a.dtype != np.bool_ or b.dtype != np.bool_:
        raise ValueError(f"expected bool correctness arrays, got {a.dtype} and {b.dtype}")
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"expected two one-dimensional arrays of the same length, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("expected at least one image")
    _check_confidence(confidence)
    both = int(np.count_nonzero(a & b))
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(~a & b))
    neither = a.size - both - a_only - b_only
    discordant = a_only + b_only
    p_value = 1.0 if discordant == 0 else float(binomtest(min(a_only, b_only), discordant, 0.5).pvalue)
    low, high = _paired_interval(both, a_only, b_only, neither, confidence)
    return PairedComparison(
        difference=100.0 * (a_only - b_only) / a.size,
        interval=(100.0 * low, 100.0 * high),
        a_only=a_only,
        b_only=b_only,
        p_value=min(p_value, 1.0),
    )


def more_accurate(correct_a: np.ndarray, correct_b: np.ndarray, confidence: float = 0.95) -> PairedComparison | None:
    """A's comparison with B when A is more accurate with confidence, else None: A is right on more of the same
    images and the exact McNemar test gives ``p < 1 - confidence``. The one rule every "better" in restnetc
    applies (Pareto dominance, and measured selection overruling CKA). Arguments as ``compare_paired``."""
    return more_accurate_than(correct_b, [correct_a], confidence)[0]


def more_accurate_than(
    reference: np.ndarray, contenders: Sequence[np.ndarray], confidence: float = 0.95
) -> list[PairedComparison | None]:
    """``more_accurate`` for each of several ``contenders`` against one ``reference``, as one family of tests:
    each contender's comparison when it is more accurate with confidence, else None.

    Testing several contenders raises the chance that one wins by luck; Holm's step-down procedure keeps the
    chance of any false win within ``1 - confidence``: the smallest McNemar p must be below ``alpha / m`` for m
    tests, the next below ``alpha / (m - 1)``, and so on, stopping at the first that is not. With one contender
    this is ``more_accurate``'s single test."""
    comparisons = [compare_paired(contender, reference, confidence) for contender in contenders]
    alpha, tests = 1.0 - confidence, len(comparisons)
    significant: set[int] = set()
    for rank, k in enumerate(sorted(range(tests), key=lambda k: comparisons[k].p_value)):
        if comparisons[k].p_value >= alpha / (tests - rank):
            break
        significant.add(k)
    return [c if k in significant and c.a_only > c.b_only else None for k, c in enumerate(comparisons)]

"""Loaded by every Python process of a build that ``benchmarks/build_growth.py`` starts (it puts this folder on
``PYTHONPATH``): times bias correction's two passes into ``$BUILD_GROWTH_LOG`` and, with
``$BUILD_GROWTH_NO_BIAS_CORRECTION`` set, switches bias correction off. Does nothing without ``$BUILD_GROWTH_LOG``."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

LOG = os.environ.get("BUILD_GROWTH_LOG")


def _timed(name: str, function: Callable[..., Any], log: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            with open(log, "a") as out:
                out.write(f"{os.getpid()} {name} {time.perf_counter() - start:.3f}\n")

    return timed


if LOG:
    from restnetc.backends import pt2e

    if os.environ.get("BUILD_GROWTH_NO_BIAS_CORRECTION"):
        pt2e.correct_biases = lambda *args, **kwargs: None  # the int8 graph keeps its calibrated biases
        pt2e.layer_means = lambda *args, **kwargs: {}  # nothing to correct towards, nothing measured
    pt2e.correct_biases = _timed("correct_biases", pt2e.correct_biases, LOG)
    pt2e.layer_means = _timed("layer_means", pt2e.layer_means, LOG)

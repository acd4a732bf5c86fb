"""Honest accuracy statistics: confidence intervals, paired comparisons and Pareto dominance (numpy + scipy)."""

from restnetc.evaluation.correctness import correctness_flags, correctness_text
from restnetc.evaluation.intervals import (
    PairedComparison,
    compare_paired,
    more_accurate,
    more_accurate_than,
    wilson_interval,
)
from restnetc.evaluation.pareto import Contender, Standing, format_cost, judge

__all__ = [
    "Contender",
    "PairedComparison",
    "Standing",
    "compare_paired",
    "correctness_flags",
    "correctness_text",
    "format_cost",
    "judge",
    "more_accurate",
    "more_accurate_than",
    "wilson_interval",
]

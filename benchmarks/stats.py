"""Small statistics the benchmarks report with: exact binomial confidence bounds."""

from __future__ import annotations

from scipy.stats import beta

__all__ = ["clopper_pearson", "upper_bound"]


def clopper_pearson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval for a binomial proportion."""
    alpha = 1 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def upper_bound(successes: int, trials: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper-Pearson upper bound: the rate is below this with ``confidence``."""
    if successes == trials:
        return 1.0
    return float(beta.ppf(confidence, successes + 1, trials - successes))

"""Does a sampled split match the weights? An exact two-sided binomial test, pure Python.

Each sampled request goes to the canary with probability ``p = canary_weight / 100`` when the
data plane serves the weights it was given, so the canary count of ``n`` classified answers is
Binomial(n, p). The two-sided p-value sums the probabilities of every count no more likely than
the one observed (the "minlike" method, as ``scipy.stats.binomtest`` computes it). The split
fails when ``p_value < alpha``; with ``alpha = 0.001`` a correctly served split fails less than
once in a thousand checks. At ``p = 0`` or ``p = 1`` the test is exact: one answer from the
wrong version fails it.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_ALPHA", "acceptance_range", "binomial_two_sided_p_value"]

DEFAULT_ALPHA = 0.001
_RELATIVE_TOLERANCE = 1 + 1e-7  # the same slack scipy uses when comparing probabilities


def _log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binomial_two_sided_p_value(successes: int, trials: int, probability: float) -> float:
    """P-value of observing ``successes`` of ``trials`` under Binomial(trials, probability)."""
    if trials <= 0:
        raise ValueError("trials must be positive")
    if not 0 <= successes <= trials:
        raise ValueError("successes must be within 0..trials")
    if probability <= 0.0:
        return 1.0 if successes == 0 else 0.0
    if probability >= 1.0:
        return 1.0 if successes == trials else 0.0
    observed = _log_pmf(successes, trials, probability)
    threshold = observed + math.log(_RELATIVE_TOLERANCE)
    total = 0.0
    for k in range(trials + 1):
        log_p = _log_pmf(k, trials, probability)
        if log_p <= threshold:
            total += math.exp(log_p)
    return min(1.0, total)


def acceptance_range(trials: int, probability: float, alpha: float = DEFAULT_ALPHA) -> tuple[int, int]:
    """The canary counts that pass the test: ``(lowest, highest)`` inclusive."""
    passing = [k for k in range(trials + 1) if binomial_two_sided_p_value(k, trials, probability) >= alpha]
    return passing[0], passing[-1]

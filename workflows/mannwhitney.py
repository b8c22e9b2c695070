"""The Mann-Whitney U (Wilcoxon rank-sum) test and the Hodges-Lehmann shift, in pure Python.

Kayenta judges canary against baseline with R's ``wilcox.test(canary, baseline, conf.int=TRUE)``
(ported to Scala as ``com.netflix.kayenta.mannwhitney``); this module reproduces that
computation with the standard library only, so it runs inside a Temporal workflow or an
activity alike and gives the same answer in both.

Method (R's defaults, which Kayenta keeps):

- **Exact** when both samples have fewer than 50 values and there are no ties anywhere: the
  null distribution of U is counted exactly (Gaussian binomial coefficients, integer arithmetic),
  the p-value is read from it, the shift estimate is the median of the m·n pairwise differences
  ``x_i - y_j`` and the confidence interval is the pair of order statistics of those differences
  picked by the distribution's ``alpha/2`` quantile (Moses' interval).
- **Normal approximation** otherwise, with the tie correction of the variance and a continuity
  correction of 0.5 toward the mean; the interval is found, as R does, by inverting the corrected
  statistic (bisection over the shift, to about 1e-12 relative where R's ``uniroot`` stops at an
  absolute 1e-4), and the estimate is the shift at which the uncorrected statistic is zero.

``x`` is the experiment (canary) and ``y`` the control (stable) throughout: U counts pairs in which
the canary's value is the larger, and a positive shift means the canary reads higher.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist, median
from typing import Literal

__all__ = [
    "Alternative",
    "MannWhitneyTest",
    "ShiftInterval",
    "mann_whitney_u",
    "rank",
    "shift_interval",
    "u_distribution",
]

Alternative = Literal["two-sided", "greater", "less"]
Method = Literal["auto", "exact", "normal"]

_EXACT_BELOW = 50  # R's wilcox.test: exact when both sizes are below 50 and nothing ties
_STANDARD_NORMAL = NormalDist()


@dataclass(frozen=True)
class MannWhitneyTest:
    """U of ``x`` (pairs with ``x_i > y_j``, ties counting one half) and its p-value."""

    u: float
    p_value: float
    method: Literal["exact", "normal"]


@dataclass(frozen=True)
class ShiftInterval:
    """Hodges-Lehmann estimate of the shift ``x - y`` and its confidence interval.

    ``achievable`` is False when the samples are too small for the exact method to reach the
    requested confidence at all (R then widens to the extreme differences with a warning; callers
    here should treat the comparison as having too little data).
    """

    estimate: float
    lower: float
    upper: float
    confidence: float
    method: Literal["exact", "normal"]
    achievable: bool = True


def rank(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Mid-ranks (1-based, ties get the average rank) and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mid = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = mid
        ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


@lru_cache(maxsize=256)
def u_distribution(m: int, n: int) -> tuple[int, ...]:
    """Number of orderings of m x's and n y's with U = 0, 1, ..., m·n (no ties).

    These are the coefficients of the Gaussian binomial ``[m+n choose m]_q``, built as
    ``prod_{i=1..m} (1 - q^(n+i)) / (1 - q^i)``; every step stays a polynomial with integer
    coefficients, so the counts are exact.
    """
    size = m * n + 1
    coefficients = [0] * size
    coefficients[0] = 1
    for i in range(1, m + 1):
        # multiply by (1 - q^(n+i)), highest power first so each term is used once
        shift = n + i
        for power in range(size - 1, shift - 1, -1):
            coefficients[power] -= coefficients[power - shift]
        # divide by (1 - q^i): a running sum with stride i
        for power in range(i, size):
            coefficients[power] += coefficients[power - i]
    return tuple(coefficients)


def _exact_cdf(u: float, m: int, n: int) -> float:
    """P(U <= u) under the null hypothesis, no ties."""
    counts = u_distribution(m, n)
    upto = math.floor(u)
    if upto < 0:
        return 0.0
    total = math.comb(m + n, m)
    return sum(counts[: min(upto, m * n) + 1]) / total


def _tie_sigma(m: int, n: int, ties: Sequence[int]) -> float:
    total = m + n
    tie_term = sum(t**3 - t for t in ties) / (total * (total - 1)) if total > 1 else 0.0
    return math.sqrt(max(m * n / 12 * ((total + 1) - tie_term), 0.0))


def _choose_method(m: int, n: int, ties: Sequence[int], method: Method) -> Literal["exact", "normal"]:
    if method != "auto":
        return method
    no_ties = all(t == 1 for t in ties)
    return "exact" if no_ties and m < _EXACT_BELOW and n < _EXACT_BELOW else "normal"


def mann_whitney_u(
    x: Sequence[float],
    y: Sequence[float],
    alternative: Alternative = "two-sided",
    method: Method = "auto",
    continuity: bool = True,
) -> MannWhitneyTest:
    """The Mann-Whitney U test of ``x`` against ``y``.

    ``greater`` tests whether ``x`` tends to be larger. ``exact`` ignores ties (use it only
    without them); ``normal`` uses the tie-corrected variance and, when ``continuity`` is set, the
    0.5 continuity correction. Matches ``scipy.stats.mannwhitneyu(x, y, ...)`` and R's
    ``wilcox.test(x, y)`` (whose W is this U).
    """
    m, n = len(x), len(y)
    if m == 0 or n == 0:
        raise ValueError("both samples need at least one value")
    ranks, ties = rank([*x, *y])
    u = sum(ranks[:m]) - m * (m + 1) / 2
    chosen = _choose_method(m, n, ties, method)
    if chosen == "exact":
        lower_tail = _exact_cdf(u, m, n)  # P(U <= u)
        upper_tail = 1.0 - _exact_cdf(u - 1, m, n)  # P(U >= u)
        if alternative == "greater":
            p = upper_tail
        elif alternative == "less":
            p = lower_tail
        else:
            p = 2 * min(lower_tail, upper_tail)
        return MannWhitneyTest(u=u, p_value=min(max(p, 0.0), 1.0), method="exact")

    sigma = _tie_sigma(m, n, ties)
    centred = u - m * n / 2
    if sigma == 0:
        return MannWhitneyTest(u=u, p_value=1.0, method="normal")
    if alternative == "greater":
        z = (centred - (0.5 if continuity else 0.0)) / sigma
        p = 1 - _STANDARD_NORMAL.cdf(z)
    elif alternative == "less":
        z = (centred + (0.5 if continuity else 0.0)) / sigma
        p = _STANDARD_NORMAL.cdf(z)
    else:
        correction = math.copysign(0.5, centred) if continuity and centred != 0 else 0.0
        z = (centred - correction) / sigma
        p = 2 * (1 - _STANDARD_NORMAL.cdf(abs(z)))
    return MannWhitneyTest(u=u, p_value=min(max(p, 0.0), 1.0), method="normal")


def _exact_quantile(p: float, m: int, n: int) -> int:
    """R's ``qwilcox(p, m, n)``: the smallest q with P(U <= q) >= p."""
    counts = u_distribution(m, n)
    total = math.comb(m + n, m)
    running = 0
    for q, count in enumerate(counts):
        running += count
        # compare in integers: p * total may not be exact, so allow for float rounding
        if running >= p * total * (1 - 1e-12):
            return q
    return m * n


def _exact_interval(x: Sequence[float], y: Sequence[float], confidence: float) -> ShiftInterval:
    m, n = len(x), len(y)
    diffs = sorted(xi - yj for xi in x for yj in y)
    alpha = 1 - confidence
    qu = _exact_quantile(alpha / 2, m, n)
    achievable = qu > 0
    qu = max(qu, 1)  # R widens to the extreme differences when the level is out of reach
    ql = m * n - qu
    return ShiftInterval(
        estimate=median(diffs),
        lower=diffs[qu - 1],
        upper=diffs[ql],
        confidence=confidence,
        method="exact",
        achievable=achievable,
    )


def _normal_interval(x: Sequence[float], y: Sequence[float], confidence: float) -> ShiftInterval:
    m, n = len(x), len(y)

    def statistic(shift: float, z_target: float, correct: bool) -> float:
        ranks, ties = rank([*(xi - shift for xi in x), *y])
        centred = sum(ranks[:m]) - m * (m + 1) / 2 - m * n / 2
        correction = math.copysign(0.5, centred) if correct and centred != 0 else 0.0
        sigma = _tie_sigma(m, n, ties)
        if sigma == 0:
            raise ValueError("cannot compute a confidence interval when every value ties")
        return (centred - correction) / sigma - z_target

    lowest = min(x) - max(y)
    highest = max(x) - min(y)

    def root(z_target: float, correct: bool) -> float:
        # The statistic falls as the shift grows; find where it crosses zero.
        if statistic(lowest, z_target, correct) <= 0:
            return lowest
        if statistic(highest, z_target, correct) >= 0:
            return highest
        lo, hi = lowest, highest
        for _ in range(200):
            mid = (lo + hi) / 2
            if statistic(mid, z_target, correct) > 0:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
                break
        return (lo + hi) / 2

    z = _STANDARD_NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    return ShiftInterval(
        estimate=root(0.0, correct=False),
        lower=root(z, correct=True),
        upper=root(-z, correct=True),
        confidence=confidence,
        method="normal",
    )


def shift_interval(
    x: Sequence[float],
    y: Sequence[float],
    confidence: float = 0.95,
    method: Method = "auto",
) -> ShiftInterval:
    """Hodges-Lehmann estimate of the shift ``x - y`` with a two-sided confidence interval,
    as R's ``wilcox.test(x, y, conf.int=TRUE, conf.level=confidence)`` computes it."""
    if not x or not y:
        raise ValueError("both samples need at least one value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    _, ties = rank([*x, *y])
    if _choose_method(len(x), len(y), ties, method) == "exact":
        return _exact_interval(x, y, confidence)
    return _normal_interval(x, y, confidence)

"""Does a sampled split match the weights? An exact two-sided binomial test, pure Python.

Each sampled request goes to the canary with probability ``p = canary_weight / 100`` when the
data plane serves the weights it was given, so the canary count of ``n`` classified answers is
Binomial(n, p). The two-sided p-value sums the probabilities of every count no more likely than
the one observed (the "minlike" method, as ``scipy.stats.binomtest`` computes it). The split
fails when ``p_value < alpha``; with ``alpha = 0.001`` a correctly served split fails less than
once in a thousand checks. At ``p = 0`` or ``p = 1`` the test is exact: one answer from the
wrong version fails it.

A check is only worth running if it can fail: :func:`split_check_problems` refuses, at spec
validation, every ``setWeight`` step whose check cannot tell a dead canary (no canary answers)
or an all-canary answer from the intended split with ``verify.samples`` answers at
``verify.alpha``, and names the samples it would need (:func:`samples_needed`).
"""

from __future__ import annotations

import math

__all__ = [
    "DEFAULT_ALPHA",
    "MAX_SAMPLES",
    "acceptance_range",
    "binomial_two_sided_p_value",
    "blind_spots",
    "samples_needed",
    "split_check_problems",
]

DEFAULT_ALPHA = 0.001
MAX_SAMPLES = 100_000
"""The most ``verify.samples`` allows."""
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


def _p_value_of_none(trials: int, probability: float) -> float:
    """:func:`binomial_two_sided_p_value` of 0 successes, without visiting every count.

    The pmf rises to its mode and falls after it, so the counts no more likely than 0 are 0 and
    its ties just above, plus a right tail found by bisection; the tail's terms fall at least
    geometrically, so summing stops once they no longer change the total.
    """
    if probability <= 0.0:
        return 1.0
    threshold = _log_pmf(0, trials, probability) + math.log(_RELATIVE_TOLERANCE)
    mode = min(trials, math.floor((trials + 1) * probability))
    total = 0.0
    k = 0
    while k <= mode and _log_pmf(k, trials, probability) <= threshold:
        total += math.exp(_log_pmf(k, trials, probability))
        k += 1
    if k > mode:  # every count up to the mode is as unlikely as none: the whole mass
        return 1.0
    low, high = mode, trials + 1  # pmf(low) > threshold; first tail count is in (low, high]
    while high - low > 1:
        middle = (low + high) // 2
        if _log_pmf(middle, trials, probability) <= threshold:
            high = middle
        else:
            low = middle
    for k in range(high, trials + 1):
        term = math.exp(_log_pmf(k, trials, probability))
        total += term
        if term <= total * 1e-17:
            break
    return min(1.0, total)


def blind_spots(samples: int, weight: int, alpha: float) -> list[str]:
    """What the check at ``weight`` percent cannot reject with ``samples`` answers: ``dead``
    (every answer from stable), ``all-canary`` (every answer from the canary), or neither."""
    probability = weight / 100
    blind = []
    if _p_value_of_none(samples, probability) >= alpha:
        blind.append("dead")
    if _p_value_of_none(samples, 1 - probability) >= alpha:  # all canary = no stable answer
        blind.append("all-canary")
    return blind


def samples_needed(weight: int, alpha: float) -> int | None:
    """The fewest answers from which on the check at ``weight`` percent (0 < weight < 100)
    rejects both a dead canary and an all-canary answer at ``alpha``; None beyond
    :data:`MAX_SAMPLES`.

    Discreteness makes this not quite monotone (at 5% and alpha 0.001, 145..150 answers reject
    both, 151 and 152 do not, 153 and more do), so a bisection's answer is checked upward and
    moved past any blind count found there.
    """
    high = 1
    while blind_spots(high, weight, alpha):  # doubling first: the cost grows with the answer
        if high >= MAX_SAMPLES:
            return None
        high = min(2 * high, MAX_SAMPLES)
    low = high // 2  # blind there (or 0)
    while high - low > 1:
        middle = (low + high) // 2
        if blind_spots(middle, weight, alpha):
            low = middle
        else:
            high = middle
    candidate, probe = high, high + 1
    while probe <= min(MAX_SAMPLES, candidate + max(20, candidate // 10)):
        if blind_spots(probe, weight, alpha):
            candidate = probe + 1
        probe += 1
    return candidate if candidate <= MAX_SAMPLES else None


def split_check_problems(weights: list[tuple[int, int]], samples: int, alpha: float) -> list[str]:
    """One problem per ``(step index, weight)`` whose split check cannot fail for a dead canary
    or an all-canary answer (weights 0 and 100 are exact: one wrong answer fails them)."""
    problems = []
    for index, weight in weights:
        if not 0 < weight < 100:
            continue
        blind = blind_spots(samples, weight, alpha)
        if not blind:
            continue
        if blind == ["dead"]:
            what = "a dead canary"
        elif blind == ["all-canary"]:
            what = "an all-canary answer"
        else:
            what = "a dead canary nor an all-canary answer"
        needed = samples_needed(weight, alpha)
        fix = (
            f"needs at least {needed} samples (verify.samples)"
            if needed is not None
            else f"no verify.samples up to {MAX_SAMPLES} can (raise verify.alpha or the weight)"
        )
        problems.append(
            f"steps[{index}].setWeight: at {weight}% the split check cannot tell {what} from the "
            f"intended split with {samples} samples at alpha {alpha:g}; {fix}"
        )
    return problems

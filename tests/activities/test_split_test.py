"""The exact binomial split test against scipy, and the numbers the README quotes.

``binomial_two_sided_p_value`` must agree with ``scipy.stats.binomtest(...).pvalue`` (the same
"minlike" two-sided method); the acceptance ranges, false-failure rates and power below are the
figures documented for ``alpha = 0.001``.
"""

from __future__ import annotations

import math
import random

import pytest
from scipy.stats import binom, binomtest

from workflows.split_test import (
    DEFAULT_ALPHA,
    acceptance_range,
    binomial_two_sided_p_value,
    blind_spots,
    samples_needed,
)


def _cases() -> list[tuple[int, int, float]]:
    rng = random.Random(20240611)
    cases = [
        (0, 1, 0.5),
        (1, 1, 0.5),
        (10, 100, 0.1),
        (20, 200, 0.1),
        (100, 200, 0.5),
        (100, 200, 0.1),  # the 50/50-served-for-90/10 case: tiny but representable
        (35, 200, 0.1),
        (36, 200, 0.1),
        (7, 200, 0.1),
        (8, 200, 0.1),
        (180, 200, 0.9),
        (3, 10, 0.3),
        (500, 1000, 0.5),
        (1, 1000, 0.001),
        (999, 1000, 0.999),
    ]
    for _ in range(400):
        n = rng.choice([1, 2, 3, 7, 10, 33, 100, 200, 257, 1000])
        p = rng.choice([0.01, 0.05, 0.1, 0.25, 0.4, 0.5, 0.6, 0.9, 0.99, rng.random()])
        # mostly counts near the expectation, where p-values are not vanishingly small
        spread = 4 * math.sqrt(n * p * (1 - p)) + 2
        k = min(n, max(0, round(rng.gauss(n * p, spread))))
        cases.append((k, n, p))
    return cases


@pytest.mark.parametrize(("k", "n", "p"), _cases())
def test_matches_scipy(k: int, n: int, p: float) -> None:
    expected = binomtest(k, n, p).pvalue
    actual = binomial_two_sided_p_value(k, n, p)
    if expected < 1e-290:  # scipy's and ours underflow differently near the double limit
        assert actual < 1e-280
    else:
        assert actual == pytest.approx(expected, rel=1e-6)


def test_matches_scipy_over_every_count_of_one_sample_size() -> None:
    for p in (0.1, 0.5, 0.9, 0.37):
        for k in range(201):
            expected = binomtest(k, 200, p).pvalue
            assert binomial_two_sided_p_value(k, 200, p) == pytest.approx(expected, rel=1e-6, abs=1e-300), (
                k,
                p,
            )


def test_zero_and_one_are_exact() -> None:
    assert binomial_two_sided_p_value(0, 200, 0.0) == 1.0
    assert binomial_two_sided_p_value(1, 200, 0.0) == 0.0
    assert binomial_two_sided_p_value(200, 200, 1.0) == 1.0
    assert binomial_two_sided_p_value(199, 200, 1.0) == 0.0
    # scipy agrees on the degenerate cases
    assert binomtest(0, 200, 0.0).pvalue == 1.0
    assert binomtest(199, 200, 1.0).pvalue == 0.0
    assert acceptance_range(200, 0.0) == (0, 0)
    assert acceptance_range(200, 1.0) == (200, 200)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="trials"):
        binomial_two_sided_p_value(0, 0, 0.5)
    with pytest.raises(ValueError, match="successes"):
        binomial_two_sided_p_value(201, 200, 0.5)
    with pytest.raises(ValueError, match="successes"):
        binomial_two_sided_p_value(-1, 200, 0.5)


def test_default_alpha() -> None:
    assert DEFAULT_ALPHA == 0.001


# -- the documented numbers (alpha = 0.001) -----------------------------------------------------


def false_failure(n: int, p: float) -> float:
    """Probability that a split served exactly as intended fails the test."""
    low, high = acceptance_range(n, p)
    return float(binom.cdf(low - 1, n, p) + binom.sf(high, n, p))


def caught(n: int, intended: float, served: float) -> float:
    """Probability that ``served`` canary share fails a test of ``intended``."""
    low, high = acceptance_range(n, intended)
    return float(1 - (binom.cdf(high, n, served) - binom.cdf(low - 1, n, served)))


@pytest.mark.parametrize(
    ("n", "p", "expected"),
    [(200, 0.1, (8, 35)), (200, 0.5, (77, 123)), (200, 0.9, (165, 192))],
)
def test_acceptance_ranges(n: int, p: float, expected: tuple[int, int]) -> None:
    low, high = acceptance_range(n, p)
    assert (low, high) == expected
    # the range is contiguous: every count inside passes, the neighbours outside fail
    assert all(binomial_two_sided_p_value(k, n, p) >= DEFAULT_ALPHA for k in range(low, high + 1))
    assert binomial_two_sided_p_value(low - 1, n, p) < DEFAULT_ALPHA
    assert binomial_two_sided_p_value(high + 1, n, p) < DEFAULT_ALPHA


@pytest.mark.parametrize("n", [100, 200, 1000])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_correct_split_fails_less_than_once_in_a_thousand(n: int, p: float) -> None:
    rate = false_failure(n, p)
    assert rate < 0.001
    assert rate > 0.0005  # and the test is not needlessly loose either


def test_fifty_fifty_served_for_ninety_ten_is_caught() -> None:
    assert caught(200, intended=0.1, served=0.5) > 1 - 1e-15


def test_smallest_canary_share_caught_with_99_percent_at_200_samples() -> None:
    # served canary share (high side) for an intended 10%: 24.7% is the first caught 99% of the time
    assert caught(200, 0.1, 0.246) < 0.99 <= caught(200, 0.1, 0.247)
    assert caught(200, 0.1, 0.2) == pytest.approx(0.785, abs=0.001)
    assert caught(200, 0.1, 0.15) == pytest.approx(0.139, abs=0.001)
    # and on the low side, a canary starved to 1.46% or less
    assert caught(200, 0.1, 0.0147) < 0.99 <= caught(200, 0.1, 0.0146)


def rejects_both_extremes(samples: int, weight: int, alpha: float) -> bool:
    p = weight / 100
    return bool(binomtest(0, samples, p).pvalue < alpha and binomtest(samples, samples, p).pvalue < alpha)


@pytest.mark.parametrize("alpha", [0.001, 1e-6])
@pytest.mark.parametrize("weight", [1, 2, 3, 5, 10, 25, 50, 75, 90, 97, 99])
def test_samples_needed_to_tell_a_dead_or_all_canary_split(weight: int, alpha: float) -> None:
    needed = samples_needed(weight, alpha)
    assert needed is not None
    assert not rejects_both_extremes(needed - 1, weight, alpha)
    for samples in range(needed, needed + 30):  # and from there on (checked against scipy)
        assert rejects_both_extremes(samples, weight, alpha)
        assert blind_spots(samples, weight, alpha) == []


def test_the_default_check_is_blind_to_a_dead_canary_at_one_to_three_percent() -> None:
    # 200 samples, alpha 0.001: at 1-3% a canary that gets no traffic at all passed the check
    for weight in (1, 2, 3):
        assert blind_spots(200, weight, DEFAULT_ALPHA) == ["dead"]
        assert binomial_two_sided_p_value(0, 200, weight / 100) >= DEFAULT_ALPHA
    assert blind_spots(200, 4, DEFAULT_ALPHA) == []
    # and 10 samples at 50/50 passed 10 answers of 10 from the canary
    assert blind_spots(10, 50, DEFAULT_ALPHA) == ["dead", "all-canary"]
    assert [samples_needed(w, DEFAULT_ALPHA) for w in (1, 2, 3, 5, 10, 50)] == [757, 379, 253, 153, 73, 11]


def test_samples_needed_is_past_the_last_blind_count() -> None:
    # discreteness: at 5% 145..150 answers reject both extremes, 151 and 152 do not
    assert blind_spots(148, 5, DEFAULT_ALPHA) == [] and blind_spots(152, 5, DEFAULT_ALPHA) == ["dead"]
    assert samples_needed(5, DEFAULT_ALPHA) == 153

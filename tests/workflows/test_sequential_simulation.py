"""The ``sequential`` test on simulated rollouts (small and seeded; the 10,000-rollout run and the
power curve are ``benchmarks/sequential.py``, published in docs/benchmarks.md)."""

from __future__ import annotations

import numpy as np

from benchmarks.sequential import ALPHA, BASE_ERROR_RATE, Plan, pure_verdicts, simulate, upper_bound

PLAN = Plan(weights=(10, 50, 100), intervals_per_step=20, requests_per_interval=500)


def test_healthy_canaries_are_rarely_rolled_back() -> None:
    rollouts = 2000
    for canary_rate in (BASE_ERROR_RATE, BASE_ERROR_RATE * 1.1):  # equal, and the edge of tolerance
        failures = int(simulate(rollouts, PLAN, canary_rate, seed=11).failed.sum())
        # alpha, plus a margin a binomial count at rate alpha stays under (99.9%)
        assert failures <= rollouts * ALPHA + 3.1 * np.sqrt(rollouts * ALPHA * (1 - ALPHA)), failures


def test_five_more_points_of_errors_are_caught_at_the_first_step() -> None:
    result = simulate(500, PLAN, BASE_ERROR_RATE + 0.05, seed=12)
    assert result.failed.all()
    assert (result.crossed_at < PLAN.intervals_per_step).mean() >= 0.99  # before 50%


def test_the_simulation_judges_as_the_workflow_s_pure_function() -> None:
    # a mix that fails and passes, through the real observe() one reading at a time
    plan = Plan(weights=(10, 50), intervals_per_step=8, requests_per_interval=300)
    for canary_rate, seed in ((BASE_ERROR_RATE + 0.02, 13), (BASE_ERROR_RATE, 14)):
        result = simulate(40, plan, canary_rate, seed=seed)
        assert pure_verdicts(result.counts) == list(result.failed)
    assert 0 < int(simulate(40, plan, BASE_ERROR_RATE + 0.02, seed=13).failed.sum()) < 40


def test_the_upper_bound_is_clopper_pearson() -> None:
    # no failure in n trials: the bound solves (1 - p)^n = 0.05
    assert abs(upper_bound(0, 10000) - (1 - 0.05 ** (1 / 10000))) < 1e-9
    assert upper_bound(5, 5) == 1.0

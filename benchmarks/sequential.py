"""The ``sequential`` metric on simulated rollouts: how often it rolls back a healthy canary, and how
many canary requests it needs to catch a bad one.

A rollout is a plan of weights (10 -> 50 -> 100 by default), each held for a number of analysis
intervals. Every interval serves a fixed number of requests; each request goes to the canary with
the weight's probability (Envoy picks per request) and fails with its version's error rate
(independent Bernoulli draws). The counts per interval go through the same test as
``measure_metrics`` (:func:`workflows.sequential.interval_log_ratios` and the same grid), here
vectorised over rollouts with numpy; :func:`pure_verdicts` replays a few rollouts through the
workflow's pure function so the tests can check that the two agree.

``SLUICE_BENCH_SEQUENTIAL_ROLLOUTS`` sets the healthy rollouts (default 10,000). Run alone with
``python -m benchmarks sequential``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.stats import beta

from benchmarks import setting_int
from workflows.sequential import RATIO_GRID, Counters, observe

__all__ = ["Plan", "Simulation", "pure_verdicts", "run", "simulate", "upper_bound"]

BASE_ERROR_RATE = 0.01
ALPHA = 0.01
TOLERANCE = 0.1
SEED = 20261205


@dataclass(frozen=True)
class Plan:
    """Weights in percent, each held ``intervals_per_step`` intervals of ``requests_per_interval``
    requests (both versions together)."""

    weights: tuple[int, ...] = (10, 50, 100)
    intervals_per_step: int = 30
    requests_per_interval: int = 500

    def canary_weights(self) -> NDArray[np.float64]:
        """The canary's weight (0..1) in each interval, in order."""
        return np.repeat(np.array(self.weights, dtype=float) / 100, self.intervals_per_step)


@dataclass
class Simulation:
    """Per rollout: the interval at which the evidence first reached ``1/alpha`` (-1: never), the
    canary requests served until then, and the counts per interval (for cross-checks)."""

    crossed_at: NDArray[np.int64]
    canary_requests_at_crossing: NDArray[np.float64]
    counts: NDArray[np.int64] = field(repr=False)
    """Shape (rollouts, intervals, 4): canary errors, canary requests, stable errors, stable requests."""

    @property
    def failed(self) -> NDArray[np.bool_]:
        return self.crossed_at >= 0


def simulate(
    rollouts: int,
    plan: Plan,
    canary_error_rate: float,
    stable_error_rate: float = BASE_ERROR_RATE,
    *,
    alpha: float = ALPHA,
    tolerance: float = TOLERANCE,
    seed: int = SEED,
) -> Simulation:
    """``rollouts`` rollouts through ``plan``, judged after every interval."""
    rng = np.random.default_rng(seed)
    weights = plan.canary_weights()
    total = plan.requests_per_interval
    grid = np.array(RATIO_GRID)
    null_ratio = 1 + tolerance
    log_products = np.zeros((rollouts, grid.size))
    crossed_at = np.full(rollouts, -1, dtype=np.int64)
    canary_served = np.zeros(rollouts)
    at_crossing = np.full(rollouts, np.nan)
    counts = np.zeros((rollouts, weights.size, 4), dtype=np.int64)
    threshold = math.log(1 / alpha)
    for index, weight in enumerate(weights):
        n_c = rng.binomial(total, weight, rollouts)
        n_s = total - n_c
        x = rng.binomial(n_c, canary_error_rate)
        y = rng.binomial(n_s, stable_error_rate)
        counts[:, index] = np.stack([x, n_c, y, n_s], axis=1)
        canary_served += n_c
        usable = (n_c > 0) & (n_s > 0)
        base = null_ratio * n_c + n_s
        # the same formula as workflows.sequential.interval_log_ratios, for every rollout at once
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = x[:, None] * np.log(grid)[None, :] - (x + y)[:, None] * np.log(
                (null_ratio * grid[None, :] * n_c[:, None] + n_s[:, None]) / base[:, None]
            )
        log_products += np.where(usable[:, None], ratios, 0.0)
        top = log_products.max(axis=1)
        log_e = top + np.log(np.exp(log_products - top[:, None]).mean(axis=1))
        newly = (log_e >= threshold) & (crossed_at < 0)
        crossed_at[newly] = index
        at_crossing[newly] = canary_served[newly]
    return Simulation(crossed_at, at_crossing, counts)


def pure_verdicts(
    counts: NDArray[np.int64], *, alpha: float = ALPHA, tolerance: float = TOLERANCE
) -> list[bool]:
    """Whether each rollout's per-interval counts make the workflow's pure function fail it."""
    failed = []
    for rollout in counts:
        state, _ = observe(
            None,
            Counters(canary_errors=0, canary_requests=0, stable_errors=0, stable_requests=0),
            tolerance=tolerance,
            alpha=alpha,
        )
        totals = np.cumsum(rollout, axis=0)
        for ce, cr, se, sr in totals:
            reading = Counters(canary_errors=ce, canary_requests=cr, stable_errors=se, stable_requests=sr)
            state, _ = observe(state, reading, tolerance=tolerance, alpha=alpha)
        failed.append(state.rejected)
    return failed


def upper_bound(failures: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a rate."""
    if failures >= trials:
        return 1.0
    return float(beta.ppf(confidence, failures + 1, trials - failures))


def healthy_rollouts() -> int:
    return setting_int("SLUICE_BENCH_SEQUENTIAL_ROLLOUTS", 10000, minimum=1)


def run() -> str:
    """The section for ``docs/benchmarks.md``."""
    plan = Plan()
    healthy = healthy_rollouts()
    lines = [
        "## `sequential`: false rollbacks and power (simulation)",
        "",
        f"Simulated rollouts through the plan {' → '.join(f'{w}%' for w in plan.weights)}, "
        f"{plan.intervals_per_step} intervals per step, {plan.requests_per_interval} requests per "
        f"interval (e.g. 50 requests/s measured every 10 s), each request to the canary with the "
        f"weight's probability and failing independently; stable's error rate "
        f"{BASE_ERROR_RATE:.0%}; `alpha` {ALPHA}, `tolerance` {TOLERANCE}; judged after every "
        f"interval by the same test as `measure_metrics` (numpy, seed {SEED}; "
        "`benchmarks/sequential.py`). Upper bounds are one-sided 95% Clopper-Pearson.",
        "",
        "| canary error rate | rollouts | rolled back | rate | 95% upper bound |",
        "|---|---|---|---|---|",
    ]
    nulls = [
        ("same as stable (1%)", BASE_ERROR_RATE, TOLERANCE),
        ("+10% relative (1.1%, the edge of `tolerance`)", BASE_ERROR_RATE * (1 + TOLERANCE), TOLERANCE),
        ("same as stable, `tolerance` 0", BASE_ERROR_RATE, 0.0),
    ]
    for label, rate, tolerance in nulls:
        result = simulate(healthy, plan, rate, tolerance=tolerance)
        failures = int(result.failed.sum())
        lines.append(
            f"| {label} | {healthy} | {failures} | {failures / healthy:.4f} | "
            f"{upper_bound(failures, healthy):.4f} |"
        )
    lines += [
        "",
        "Power: the canary held at 10% of the traffic (one long step of 200 intervals, at most "
        "10,000 canary requests), 2,000 rollouts per row; canary requests served until the "
        "rollback, among the rollouts rolled back. The plan columns run the default plan above: "
        "rolled back during the 10% step (before 50%), and at all (before 100%).",
        "",
        "| canary errors (points over 1%) | caught within 10,000 canary requests "
        "| canary requests: median | p90 | plan: caught before 50% | plan: caught before 100% |",
        "|---|---|---|---|---|---|",
    ]
    long_step = Plan(weights=(10,), intervals_per_step=200)
    for extra in (0.0025, 0.005, 0.01, 0.02, 0.05, 0.10, 0.99):
        label = "dead (every request fails)" if extra > 0.5 else f"+{extra * 100:g}"
        held = simulate(2000, long_step, BASE_ERROR_RATE + extra)
        planned = simulate(2000, plan, BASE_ERROR_RATE + extra)
        needed = held.canary_requests_at_crossing[held.failed]
        median = f"{np.median(needed):.0f}" if needed.size else "-"
        p90 = f"{np.percentile(needed, 90):.0f}" if needed.size else "-"
        before_half = (planned.failed & (planned.crossed_at < plan.intervals_per_step)).mean()
        lines.append(
            f"| {label} | {held.failed.mean():.1%} | {median} | {p90} | "
            f"{before_half:.1%} | {planned.failed.mean():.1%} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())

"""How often ``compare`` fails an identical canary at least once in a 30-minute rollout.

A seeded simulation that feeds the real judge (:func:`workflows.compare.compare_samples` and
:func:`workflows.judge.assess_comparison`): both versions are drawn from the same distribution,
the analysis measures every ``interval`` (default 30s) for 30 minutes, each measurement compares
the last ``window`` (default 2m) at ``step`` (default 10s), 13 points a side, and one failed
measurement fails the rollout (``failureLimit: 0``, the default). Two kinds of series:

- ``latency``: independent Gaussian points (mean 100 ms, sd 10 ms) — the test's own assumptions;
- ``error ratio``: what a PromQL ratio over ``rate(...[1m])`` reads at a 10s step for a service
  at 100 requests/s with 1% errors, the canary at 10% of the traffic: Poisson requests and
  binomial errors per 10s, each point the ratio over the last six (so neighbouring points share
  most of their requests, as Prometheus's do).

``python -m benchmarks compare_confidence`` prints the table; ``SLUICE_BENCH_CONFIDENCE_ROLLOUTS``
sets the rollouts of the latency series (default 1000); the error-ratio series, ten times slower
to judge (ties: the normal approximation's bisection) and failed far more often, gets a fifth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np

from benchmarks import setting_int
from workflows.analysis import CompareSpec
from workflows.compare import compare_samples
from workflows.judge import assess_comparison

__all__ = ["CONFIDENCES", "false_failures", "run"]

CONFIDENCES = (0.95, 0.98, 0.99)
ROLLOUT_SECONDS = 30 * 60
INTERVAL = 30
WINDOW = 120
STEP = 10
RATE_BUCKETS = 6  # rate(...[1m]) at a 10s step
TOTAL_RPS = 100.0
CANARY_SHARE = 0.1
ERROR_RATE = 0.01
SEED = 20261205

Series = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]


def latency(rng: np.random.Generator, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent Gaussian latencies (ms) for stable and canary."""
    return rng.normal(100.0, 10.0, points), rng.normal(100.0, 10.0, points)


def error_ratio(
    rng: np.random.Generator, points: int, rate_buckets: int = RATE_BUCKETS
) -> tuple[np.ndarray, np.ndarray]:
    """Error ratio over a 1m rate window, sampled every 10s, for stable and canary."""
    buckets = points + rate_buckets - 1
    result = []
    for share in (1 - CANARY_SHARE, CANARY_SHARE):
        requests = rng.poisson(TOTAL_RPS * share * STEP, buckets)
        errors = rng.binomial(requests, ERROR_RATE)
        window = np.ones(rate_buckets)
        summed_requests = np.convolve(requests, window, mode="valid")
        summed_errors = np.convolve(errors, window, mode="valid")
        result.append(np.where(summed_requests > 0, summed_errors / np.maximum(summed_requests, 1), np.nan))
    return result[0], result[1]


def error_ratio_per_step(rng: np.random.Generator, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Error ratio over ``rate(...[10s])`` at a 10s step: no request counted twice (mostly 0s)."""
    return error_ratio(rng, points, rate_buckets=1)


SERIES: dict[str, Series] = {
    "latency": latency,
    "error ratio `[1m]`": error_ratio,
    "error ratio `[10s]`": error_ratio_per_step,
}


def _specs(direction: str) -> dict[float, CompareSpec]:
    query = {"address": "http://prometheus:9090", "query": 'x{d="{{destination}}"}'}
    return {
        confidence: CompareSpec.model_validate(
            {"prometheus": query, "confidence": confidence, "direction": direction}
        )
        for confidence in CONFIDENCES
    }


def _measurements(stable: np.ndarray, canary: np.ndarray) -> Iterator[tuple[list[float], list[float]]]:
    per_window = WINDOW // STEP + 1
    for end in range(per_window, len(stable) + 1, INTERVAL // STEP):
        yield stable[end - per_window : end].tolist(), canary[end - per_window : end].tolist()


def false_failures(
    series: Series, rollouts: int, direction: str = "either", seed: int = SEED
) -> dict[float, tuple[int, int, int]]:
    """Per confidence: (rollouts failed at least once, failed measurements, measurements)."""
    rng = np.random.default_rng(seed)
    specs = _specs(direction)
    points = (ROLLOUT_SECONDS + WINDOW) // STEP + 1
    counts = {confidence: [0, 0, 0] for confidence in CONFIDENCES}
    for _ in range(rollouts):
        stable, canary = series(rng, points)
        failed = dict.fromkeys(CONFIDENCES, False)
        for stable_window, canary_window in _measurements(stable, canary):
            for confidence, spec in specs.items():
                verdict = assess_comparison(spec, compare_samples(stable_window, canary_window, spec))
                bad = verdict.verdict == "Failed"
                counts[confidence][1] += bad
                counts[confidence][2] += 1
                failed[confidence] |= bad
        for confidence in CONFIDENCES:
            counts[confidence][0] += failed[confidence]
    return {confidence: (a, b, c) for confidence, (a, b, c) in counts.items()}


def rollouts_per_kind() -> int:
    return setting_int("SLUICE_BENCH_CONFIDENCE_ROLLOUTS", 1000, minimum=1)


def run() -> str:
    from benchmarks.stats import clopper_pearson

    started = time.monotonic()
    rows = []
    for name, series in SERIES.items():
        rollouts = rollouts_per_kind() if name == "latency" else max(1, rollouts_per_kind() // 5)
        for direction in ("either", "increase"):
            for confidence, (failed, bad, total) in false_failures(series, rollouts, direction).items():
                low, high = clopper_pearson(failed, rollouts)
                rows.append(
                    f"| {name} | `{direction}` | {confidence:g} | **{failed / rollouts:.1%}** "
                    f"({low:.1%} to {high:.1%}) | {bad / total:.2%} |"
                )
    elapsed = time.monotonic() - started
    return "\n".join(
        [
            "## Default confidence of `compare`: identical canaries failed in a 30-minute rollout",
            "",
            f"{rollouts_per_kind()} simulated rollouts of the latency series, "
            f"{max(1, rollouts_per_kind() // 5)} of each error ratio (seed {SEED}), "
            f"{elapsed / 60:.1f} min; "
            "both versions drawn from the same distribution, so every failure is a false alarm. "
            f"`interval: {INTERVAL}s`, `window: {WINDOW // 60}m`, `step: {STEP}s` (the defaults: "
            f"{WINDOW // STEP + 1} points a side, {ROLLOUT_SECONDS // INTERVAL} measurements in 30 "
            "minutes), `failureLimit: 0`, `tolerance: 0.25`; the real `compare_samples` and "
            "`assess_comparison` judge every measurement. `latency`: independent Gaussian points "
            "(100 ± 10 ms). `error ratio [1m]`: errors/requests over `rate(...[1m])` every 10s for "
            f"a service at {TOTAL_RPS:g} req/s with {ERROR_RATE:.0%} errors in both versions, the "
            f"canary at {CANARY_SHARE:.0%} of the traffic (neighbouring points share five sixths "
            "of their requests); `error ratio [10s]`: the same over `rate(...[10s])`, so no "
            "request is counted twice (the canary's points are mostly 0).",
            "",
            "| series | direction | confidence | rollouts failed at least once (95% CI) | "
            "measurements failed |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Sixty overlapping looks at one healthy canary: the per-measurement false-alarm rate "
            "adds up over the rollout (checking every interval is not free for a fixed-sample "
            "test; only an anytime-valid test such as `sequential` holds its level over the whole "
            "rollout).",
        ]
    )


if __name__ == "__main__":
    print(run())

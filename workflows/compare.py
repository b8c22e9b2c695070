"""Kayenta's ``MannWhitneyClassifier``: canary samples against stable samples, no I/O.

A ``compare`` metric reads both destinations over one window; :func:`compare_samples` classifies
the shift (``Pass``, ``High``, ``Low``, ``Nodata``) from a Mann-Whitney U test and the
Hodges-Lehmann interval, and :func:`workflows.judge.assess_comparison` turns that into a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import fmean
from typing import Literal

from workflows.analysis import CompareSpec
from workflows.mannwhitney import mann_whitney_u, shift_interval
from workflows.measurements import Comparison

__all__ = ["compare_samples"]

Shift = Literal["High", "Low", "Pass"]


def compare_samples(stable: Sequence[float], canary: Sequence[float], spec: CompareSpec) -> Comparison:
    """Classify the canary against stable as Kayenta's ``MannWhitneyClassifier`` does.

    1. Fewer than ``minSamples`` values on either side: ``Nodata``.
    2. Identical samples, or every value equal: ``Pass``.
    3. Otherwise the Hodges-Lehmann shift (canary - stable) and its ``confidence`` interval
       (see :mod:`workflows.mannwhitney`) are compared with the bounds ``+-tolerance * |estimate|``:
       the lower end above the upper bound is ``High``, the upper end below the lower bound is
       ``Low``. Kayenta then lets a High whose canary/stable mean ratio is under
       ``allowedIncrease`` (a Low whose ratio is over ``allowedDecrease``) pass.
    4. Two departures from Kayenta's arithmetic, both where it would pass a worse canary:

       - stable mean 0 and canary mean not: the ratio is undefined (None), not 1.0, so no
         ``allowedIncrease`` lets a rise from zero errors pass;
       - a degenerate interval (estimate 0 with an end on it, as zero-heavy error data gives:
         most pairwise differences are 0) cannot say High or Low, and rounding noise in its ends
         would; there the rank test's p-value (below ``1 - confidence``) and the side U falls on
         decide.

    Where Kayenta adds Gaussian noise to two constant samples (say stable always 0, canary always
    0.2), this treats them as completely separated, which is what the noise achieves, without
    randomness. Where R would widen the interval when the sample sizes cannot reach the
    confidence level at all, this answers ``Nodata`` instead of judging on less confidence.
    """
    clean_stable = [v for v in stable if not math.isnan(v)]
    clean_canary = [v for v in canary if not math.isnan(v)]
    base = Comparison(
        classification="Nodata",
        stable_samples=len(clean_stable),
        canary_samples=len(clean_canary),
        stable_mean=fmean(clean_stable) if clean_stable else None,
        canary_mean=fmean(clean_canary) if clean_canary else None,
    )
    if len(clean_stable) < spec.min_samples or len(clean_canary) < spec.min_samples:
        return base.model_copy(
            update={
                "reason": f"too few samples (stable {len(clean_stable)}, canary "
                f"{len(clean_canary)}; minSamples {spec.min_samples})"
            }
        )
    stable_mean = fmean(clean_stable)
    canary_mean = fmean(clean_canary)
    ratio = _mean_ratio(stable_mean, canary_mean)
    base = base.model_copy(update={"mean_ratio": ratio})
    if sorted(clean_stable) == sorted(clean_canary):
        return base.model_copy(
            update={"classification": "Pass", "reason": "canary and stable data are identical"}
        )
    if len(set(clean_stable) | set(clean_canary)) == 1:
        return base.model_copy(update={"classification": "Pass", "reason": "every value is equal"})

    test = mann_whitney_u(clean_canary, clean_stable)
    if len(set(clean_stable)) == 1 and len(set(clean_canary)) == 1:
        shift = clean_canary[0] - clean_stable[0]
        # complete separation: the exact test's smallest two-sided p-value decides reachability
        smallest_p = 2 / math.comb(len(clean_stable) + len(clean_canary), len(clean_stable))
        estimate, lower, upper = shift, shift, shift
        achievable = smallest_p <= 1 - spec.confidence
        method = "exact"
    else:
        interval = shift_interval(clean_canary, clean_stable, spec.confidence)
        # the interval's ends are found by bisection: a tie at 0 comes back as +-1e-13
        scale = max(1.0, *(abs(v) for v in clean_stable), *(abs(v) for v in clean_canary))
        estimate, lower, upper = (
            _snap(v, scale) for v in (interval.estimate, interval.lower, interval.upper)
        )
        achievable = interval.achievable
        method = interval.method
    base = base.model_copy(
        update={
            "estimate": estimate,
            "lower": lower,
            "upper": upper,
            "p_value": test.p_value,
            "method": method,
        }
    )
    if not achievable:
        return base.model_copy(
            update={
                "reason": f"too few samples to reach {spec.confidence:g} confidence "
                f"(stable {len(clean_stable)}, canary {len(clean_canary)})"
            }
        )
    interval_text = (
        f"shift {estimate:.6g} [{lower:.6g}, {upper:.6g}] at {spec.confidence:g}, "
        f"means {canary_mean:.6g} vs {stable_mean:.6g}, p={test.p_value:.3g}"
    )
    ratio_text = "undefined (stable mean 0)" if ratio is None else f"{ratio:.3g}"
    moved = _shift(estimate, lower, upper, spec.tolerance)
    if moved is None:
        # Zero-heavy data (error rates): most pairwise differences are 0, the Hodges-Lehmann
        # interval collapses onto 0 and cannot say which way the canary moved; the rank test can.
        significant = test.p_value < 1 - spec.confidence
        higher = test.u > len(clean_canary) * len(clean_stable) / 2
        moved = ("High" if higher else "Low") if significant else "Pass"
        interval_text += "; interval degenerate at 0, the rank test decides"
    if moved == "High":
        if ratio is not None and ratio < spec.allowed_increase:
            return base.model_copy(
                update={
                    "classification": "Pass",
                    "reason": f"higher but mean ratio {ratio_text} < allowedIncrease "
                    f"{spec.allowed_increase:g}: {interval_text}",
                }
            )
        return base.model_copy(update={"classification": "High", "reason": f"canary higher: {interval_text}"})
    if moved == "Low":
        if ratio is not None and ratio > spec.allowed_decrease:
            return base.model_copy(
                update={
                    "classification": "Pass",
                    "reason": f"lower but mean ratio {ratio_text} > allowedDecrease "
                    f"{spec.allowed_decrease:g}: {interval_text}",
                }
            )
        return base.model_copy(update={"classification": "Low", "reason": f"canary lower: {interval_text}"})
    return base.model_copy(
        update={"classification": "Pass", "reason": f"no significant shift: {interval_text}"}
    )


_ROUNDING = 1e-9
"""Interval ends within this fraction of the data's scale from 0 are 0 (bisection noise)."""


def _snap(value: float, scale: float) -> float:
    return 0.0 if abs(value) <= _ROUNDING * scale else value


def _mean_ratio(stable_mean: float, canary_mean: float) -> float | None:
    """Kayenta's effect size, canary mean / stable mean; None when stable is 0 and the canary is
    not: a rise from zero is beyond every ``allowedIncrease`` (Kayenta fails it too)."""
    if stable_mean == 0:
        return 1.0 if canary_mean == 0 else None
    return canary_mean / stable_mean


def _shift(estimate: float, lower: float, upper: float, tolerance: float) -> Shift | None:
    """Kayenta's reading of the interval; None when it is degenerate: the estimate is 0 and an
    end sits on it, so ``lower > tolerance * |estimate|`` would compare 0 with 0."""
    if estimate == 0 and (lower == 0 or upper == 0):
        return None
    bound = tolerance * abs(estimate)
    if lower > bound:
        return "High"
    if upper < -bound:
        return "Low"
    return "Pass"

"""Pure verdict logic for metric analysis: data in, verdict out, no I/O, no clock.

Safe inside a Temporal workflow (standard library and pydantic only). The shape follows Argo
Rollouts: :func:`assess_measurement` judges one value (Argo's ``evaluateResult``),
:func:`assess_metric` judges a metric's tally against its limits (Argo's ``assessMetricStatus``),
and :func:`assess_analysis` turns all metrics into what the rollout must do. :func:`compare_samples`
is Kayenta's ``MannWhitneyClassifier`` for ``compare`` metrics.

Limits count as in Argo: a limit of N tolerates N, and the (N+1)-th fails. ``failed`` and
``inconclusive`` count every such measurement since analysis started (or, for inconclusive, since
a person resumed the pause it caused); ``consecutive_error`` resets at the first measurement that
is not an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean
from typing import NamedTuple

from workflows.analysis import AnalysisSpec, CompareSpec, MetricSpec
from workflows.mannwhitney import mann_whitney_u, shift_interval
from workflows.measurements import (
    KEEP_MEASUREMENTS,
    AnalysisOutcome,
    AnalysisState,
    Comparison,
    Measurement,
    MeasureResult,
    MetricPhase,
    MetricResult,
    Verdict,
)

__all__ = [
    "Assessment",
    "apply_measurements",
    "assess_analysis",
    "assess_comparison",
    "assess_measurement",
    "assess_metric",
    "compare_samples",
    "format_value",
    "record_measurement",
    "resume_after_inconclusive",
    "tally",
]


class Assessment(NamedTuple):
    """A measurement's verdict and the reason a person reads."""

    verdict: Verdict
    message: str


def format_value(value: float | None) -> str:
    """A measurement as people read it: ``0.0123``, ``250``, ``no data``."""
    return "no data" if value is None else f"{value:.6g}"


def assess_measurement(metric: MetricSpec, value: float | None, error: str | None = None) -> Assessment:
    """Judge one reading of a ``prometheus`` or ``envoy`` metric against ``max``/``min``.

    A provider error is ``Error``; no data (None, NaN) is ``Inconclusive``; a value above ``max``
    or below ``min`` is ``Failed``; anything else is ``Successful``.
    """
    if error is not None:
        return Assessment("Error", error)
    if value is None or math.isnan(value):
        return Assessment("Inconclusive", "no data")
    if metric.max is not None and value > metric.max:
        return Assessment("Failed", f"{format_value(value)} > max {metric.max:g}")
    if metric.min is not None and value < metric.min:
        return Assessment("Failed", f"{format_value(value)} < min {metric.min:g}")
    return Assessment("Successful", f"{format_value(value)} within {metric.threshold()}")


def compare_samples(stable: Sequence[float], canary: Sequence[float], spec: CompareSpec) -> Comparison:
    """Classify the canary against stable as Kayenta's ``MannWhitneyClassifier`` does.

    1. Fewer than ``minSamples`` values on either side: ``Nodata``.
    2. Identical samples, or every value equal: ``Pass``.
    3. Otherwise the Hodges-Lehmann shift (canary - stable) and its ``confidence`` interval
       (see :mod:`workflows.mannwhitney`) are compared with the bounds ``+-tolerance * |estimate|``:
       the lower end above the upper bound is ``High``, the upper end below the lower bound is
       ``Low``. Kayenta then lets a High whose canary/stable mean ratio is under
       ``allowedIncrease`` (a Low whose ratio is over ``allowedDecrease``) pass.

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
    ratio = 1.0 if stable_mean == 0 else canary_mean / stable_mean
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
        estimate, lower, upper = interval.estimate, interval.lower, interval.upper
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
    bound = spec.tolerance * abs(estimate)
    interval_text = (
        f"shift {estimate:.6g} [{lower:.6g}, {upper:.6g}] at {spec.confidence:g}, "
        f"means {canary_mean:.6g} vs {stable_mean:.6g}, p={test.p_value:.3g}"
    )
    if lower > bound:
        if ratio < spec.allowed_increase:
            return base.model_copy(
                update={
                    "classification": "Pass",
                    "reason": f"higher but mean ratio {ratio:.3g} < allowedIncrease "
                    f"{spec.allowed_increase:g}: {interval_text}",
                }
            )
        return base.model_copy(update={"classification": "High", "reason": f"canary higher: {interval_text}"})
    if upper < -bound:
        if ratio > spec.allowed_decrease:
            return base.model_copy(
                update={
                    "classification": "Pass",
                    "reason": f"lower but mean ratio {ratio:.3g} > allowedDecrease "
                    f"{spec.allowed_decrease:g}: {interval_text}",
                }
            )
        return base.model_copy(update={"classification": "Low", "reason": f"canary lower: {interval_text}"})
    return base.model_copy(
        update={"classification": "Pass", "reason": f"no significant shift: {interval_text}"}
    )


def assess_comparison(spec: CompareSpec, comparison: Comparison) -> Assessment:
    """A ``compare`` measurement's verdict: a High or Low the ``direction`` forbids fails,
    ``Nodata`` is inconclusive, anything else succeeds."""
    kind = comparison.classification
    if kind == "Nodata":
        return Assessment("Inconclusive", f"no data: {comparison.reason}")
    forbidden = {"increase": {"High"}, "decrease": {"Low"}, "either": {"High", "Low"}}
    if kind in forbidden[spec.direction]:
        return Assessment("Failed", comparison.reason)
    return Assessment("Successful", comparison.reason)


def tally(metric: MetricSpec, measurements: Iterable[Measurement]) -> MetricResult:
    """Fold measurements (oldest first) into a :class:`MetricResult`."""
    result = MetricResult(name=metric.name)
    for measurement in measurements:
        result = record_measurement(metric, result, measurement)
    return result


def _phase(metric: MetricSpec, result: MetricResult) -> tuple[MetricPhase, str]:
    last = result.measurements[-1].message if result.measurements else ""
    suffix = f"; last: {last}" if last else ""
    if result.failed > metric.failure_limit:
        return "Failed", (
            f"metric {metric.name} failed: {result.failed} failed measurement(s) > failureLimit "
            f"{metric.failure_limit} ({metric.threshold()}){suffix}"
        )
    if result.consecutive_error > metric.consecutive_error_limit:
        return "Error", (
            f"metric {metric.name} failed: {result.consecutive_error} provider errors in a row > "
            f"consecutiveErrorLimit {metric.consecutive_error_limit}{suffix}"
        )
    if result.inconclusive > metric.inconclusive_limit:
        return "Inconclusive", (
            f"metric {metric.name} inconclusive: {result.inconclusive} measurement(s) without a "
            f"verdict > inconclusiveLimit {metric.inconclusive_limit}{suffix}"
        )
    return "Running", ""


def assess_metric(metric: MetricSpec, history: MetricResult | Sequence[Measurement]) -> MetricPhase:
    """A metric's phase from its tally (or its full list of measurements), as Argo's
    ``assessMetricStatus``: ``Failed`` past ``failureLimit``, ``Error`` past
    ``consecutiveErrorLimit``, ``Inconclusive`` past ``inconclusiveLimit``, else ``Running``.

    Failure outranks error, which outranks inconclusive: a metric that is both failing and short
    of data must roll back, not wait for a person.
    """
    result = history if isinstance(history, MetricResult) else tally(metric, history)
    return _phase(metric, result)[0]


def record_measurement(
    metric: MetricSpec,
    result: MetricResult,
    measurement: Measurement,
    keep: int = KEEP_MEASUREMENTS,
) -> MetricResult:
    """A new tally with ``measurement`` counted, the last ``keep`` measurements kept, and the
    phase and its reason brought up to date."""
    counts = {
        "count": result.count + 1,
        "successful": result.successful + (measurement.verdict == "Successful"),
        "failed": result.failed + (measurement.verdict == "Failed"),
        "inconclusive": result.inconclusive + (measurement.verdict == "Inconclusive"),
        "error": result.error + (measurement.verdict == "Error"),
        "consecutive_error": result.consecutive_error + 1 if measurement.verdict == "Error" else 0,
        "measurements": [*result.measurements, measurement][-keep:] if keep > 0 else [],
    }
    updated = result.model_copy(update=counts)
    phase, message = _phase(metric, updated)
    return updated.model_copy(update={"phase": phase, "message": message})


def apply_measurements(spec: AnalysisSpec, state: AnalysisState, measured: MeasureResult) -> AnalysisState:
    """The analysis state after one ``measure_metrics`` round (unknown metric names are ignored:
    they come from an older spec)."""
    metrics = dict(state.metrics)
    for measurement in measured.measurements:
        try:
            metric = spec.metric(measurement.metric)
        except KeyError:
            continue
        current = metrics.get(metric.name) or MetricResult(name=metric.name)
        metrics[metric.name] = record_measurement(metric, current, measurement)
    provider_states = {**state.provider_states, **measured.provider_states}
    return state.model_copy(
        update={"metrics": metrics, "provider_states": provider_states, "rounds": state.rounds + 1}
    )


def assess_analysis(spec: AnalysisSpec, state: AnalysisState) -> AnalysisOutcome:
    """What the rollout must do now: ``Failed`` (roll back, type ``AnalysisFailed``),
    ``Inconclusive`` (pause for a person) or ``Running`` (go on). The first failing metric in
    spec order decides, so the message is stable."""
    results: Mapping[str, MetricResult] = state.metrics
    inconclusive: AnalysisOutcome | None = None
    for metric in spec.metrics:
        result = results.get(metric.name)
        if result is None:
            continue
        phase, message = _phase(metric, result)
        if phase in ("Failed", "Error"):
            return AnalysisOutcome(phase="Failed", message=message, metric=metric.name)
        if phase == "Inconclusive" and inconclusive is None:
            inconclusive = AnalysisOutcome(phase="Inconclusive", message=message, metric=metric.name)
    return inconclusive or AnalysisOutcome(phase="Running")


def resume_after_inconclusive(state: AnalysisState) -> AnalysisState:
    """Forget the inconclusive counts once a person resumes (Argo starts a new AnalysisRun), so
    the next ``inconclusiveLimit`` measurements without data are tolerated again."""
    metrics = {
        name: result.model_copy(
            update={
                "inconclusive": 0,
                "phase": "Running" if result.phase == "Inconclusive" else result.phase,
                "message": "" if result.phase == "Inconclusive" else result.message,
            }
        )
        for name, result in state.metrics.items()
    }
    return state.model_copy(update={"metrics": metrics})

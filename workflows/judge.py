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
from typing import NamedTuple

from workflows.analysis import AnalysisSpec, CompareSpec, MetricSpec
from workflows.compare import compare_samples
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

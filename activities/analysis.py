"""Activity ``measure_metrics``: measure every analysis metric once and judge each measurement.

A provider that cannot answer gives an ``Error`` measurement, not a failed activity: the
workflow counts errors against ``consecutiveErrorLimit`` and measures again at the next interval,
so a Prometheus restart does not stall or fail the rollout, but a Prometheus that stays down does
fail the metric. The activity therefore only fails on bad input, and is safe to retry: what a
provider needs from its previous measurement (Envoy's baseline, see
:mod:`activities.metrics.envoy`) is the state the workflow passes in, never worker memory.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.metrics import MetricProviderError, build_provider, build_range_provider
from workflows.analysis import (
    DESTINATION_PLACEHOLDER,
    CompareSpec,
    EnvoyMetricSource,
    MetricSpec,
    PrometheusMetricSource,
)
from workflows.judge import assess_comparison, assess_measurement, compare_samples
from workflows.measurements import MeasureInput, Measurement, MeasureResult

__all__ = ["measure_metric", "measure_metrics"]


async def _compare(
    metric: MetricSpec, spec: CompareSpec, stable: str, canary: str, now: datetime
) -> Measurement:
    provider = build_range_provider(spec.prometheus)
    start = now - spec.window
    stable_query = spec.prometheus.query.replace(DESTINATION_PLACEHOLDER, stable)
    canary_query = spec.prometheus.query.replace(DESTINATION_PLACEHOLDER, canary)
    # one window, both destinations: same start, end and step, so the samples line up
    stable_values, canary_values = await asyncio.gather(
        provider.run_range_query(stable_query, start, now, spec.step),
        provider.run_range_query(canary_query, start, now, spec.step),
    )
    comparison = compare_samples(stable_values, canary_values, spec)
    verdict, message = assess_comparison(spec, comparison)
    return Measurement(
        metric=metric.name,
        value=comparison.estimate,
        verdict=verdict,
        message=message,
        at=now,
        comparison=comparison,
    )


async def measure_metric(
    metric: MetricSpec,
    stable: str,
    canary: str,
    carried_state: dict[str, Any] | None = None,
    max_baseline_age_seconds: float = 300.0,
) -> tuple[Measurement, dict[str, Any] | None]:
    """Measure one metric; provider errors become an ``Error`` measurement. Also returns the
    state its provider asks to carry to the next measurement (None: nothing)."""
    now = datetime.now(UTC)
    try:
        if metric.compare is not None:
            return await _compare(metric, metric.compare, stable, canary, now), None
        if metric.prometheus is not None:
            source: PrometheusMetricSource | EnvoyMetricSource = metric.prometheus
            query = metric.prometheus.query
        else:
            assert metric.envoy is not None  # the spec guarantees exactly one source
            source, query = metric.envoy, metric.envoy.measure
        provider = build_provider(
            source, carried_state=carried_state, max_baseline_age_seconds=max_baseline_age_seconds
        )
        value = await provider.run_query(query)
        verdict, message = assess_measurement(metric, value)
        return (
            Measurement(
                metric=metric.name,
                value=value,
                verdict=verdict,
                message=message,
                at=datetime.now(UTC),
            ),
            provider.carried_state,
        )
    except MetricProviderError as error:
        message = str(error)
    except Exception as error:  # a bug must count as an error, not silence the other metrics
        activity.logger.exception("measuring %s failed unexpectedly", metric.name)
        message = f"internal error: {type(error).__name__}: {error}"
    verdict, message = assess_measurement(metric, None, error=message)
    # the state goes back as it came, so the next measurement starts from the same place
    return (
        Measurement(metric=metric.name, value=None, verdict=verdict, message=message, at=now),
        carried_state,
    )


@activity.defn(name="measure_metrics")
async def measure_metrics(request: MeasureInput) -> MeasureResult:
    """Measure every metric of ``request`` concurrently, in spec order."""
    results = await asyncio.gather(
        *(
            measure_metric(
                metric,
                request.stable,
                request.canary,
                request.provider_states.get(metric.name),
                request.max_baseline_age_seconds,
            )
            for metric in request.metrics
        )
    )
    states = {
        metric.name: state
        for metric, (_, state) in zip(request.metrics, results, strict=True)
        if state is not None
    }
    return MeasureResult(measurements=[measurement for measurement, _ in results], provider_states=states)

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

from activities._excerpt import excerpt
from activities.errors import NotAllowed
from activities.metrics import MetricProviderError, build_provider, build_range_provider
from activities.metrics.sequential import measure_sequential
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
    metric: MetricSpec, spec: CompareSpec, stable: str, canary: str, now: datetime, field: str
) -> Measurement:
    provider = build_range_provider(spec.prometheus, field=f"{field}.compare.prometheus")
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
    field: str | None = None,
) -> tuple[Measurement, dict[str, Any] | None]:
    """Measure one metric; provider errors and the worker policy's refusals become an ``Error``
    measurement. Also returns the state its provider asks to carry to the next measurement
    (None: nothing). ``field`` is where the metric is in the spec (``analysis.metrics[0]``)."""
    now = datetime.now(UTC)
    field = field or f"analysis.metrics[{metric.name}]"
    try:
        if metric.compare is not None:
            return await _compare(metric, metric.compare, stable, canary, now, field), None
        if metric.sequential is not None:
            return await measure_sequential(metric, stable, canary, carried_state, field)
        if metric.prometheus is not None:
            source: PrometheusMetricSource | EnvoyMetricSource = metric.prometheus
            query = metric.prometheus.query
            field += ".prometheus"
        else:
            assert metric.envoy is not None  # the spec guarantees exactly one source
            source, query = metric.envoy, metric.envoy.measure
            field += ".envoy"
        provider = build_provider(
            source,
            carried_state=carried_state,
            max_baseline_age_seconds=max_baseline_age_seconds,
            field=field,
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
    except NotAllowed as error:
        # counted like any provider error, so consecutiveErrorLimit fails the metric and the
        # rollout rolls back with the refusal in its message
        message = f"not allowed: {error}"
    except Exception as error:  # a bug must count as an error, not silence the other metrics
        activity.logger.exception("measuring %s failed unexpectedly", metric.name)
        # sanitized: an unexpected error may carry a piece of an answer
        message = f"internal error: {type(error).__name__}: {excerpt(error)}"
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
                f"analysis.metrics[{index}]",
            )
            for index, metric in enumerate(request.metrics)
        )
    )
    states = {
        metric.name: state
        for metric, (_, state) in zip(request.metrics, results, strict=True)
        if state is not None
    }
    return MeasureResult(measurements=[measurement for measurement, _ in results], provider_states=states)

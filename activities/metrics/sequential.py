"""A ``sequential`` measurement: read the four cumulative counters, add the interval since the last
reading to the test's state, judge (the test: :mod:`workflows.sequential`).

The state (the last reading, one log-product per alternative, the totals) is the metric's carried
provider state: the workflow keeps it in ``AnalysisState.provider_states`` and hands it back, so a
retried activity counts the same interval again from the same baseline, and continue-as-new
carries the evidence on. A measurement without a reading (a counter query with no answer, a
provider error) gives the state back as it came.

Counters come from Prometheus (four instant queries, evaluated at one instant) or from an Envoy
admin endpoint (``upstream_rq_5xx`` and ``upstream_rq_completed`` of the clusters named as the
canary and stable hosts).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from activities.metrics._base import MetricProviderError
from activities.metrics.envoy import EnvoyProvider
from activities.metrics.prometheus import PrometheusProvider
from workflows.analysis import DESTINATION_PLACEHOLDER, EnvoyMetricSource, MetricSpec, PrometheusMetricSource
from workflows.measurements import Measurement
from workflows.sequential import Counters, SequentialState, judge, observe
from workflows.sequential_spec import SequentialSpec

__all__ = ["measure_sequential", "read_counters"]

_COUNTERS = (
    ("canary", "errors", "canary_errors"),
    ("canary", "requests", "canary_requests"),
    ("stable", "errors", "stable_errors"),
    ("stable", "requests", "stable_requests"),
)


async def _from_prometheus(spec: SequentialSpec, stable: str, canary: str, field: str) -> Counters | str:
    server = spec.prometheus
    assert server is not None and spec.canary is not None and spec.stable is not None
    hosts = {"canary": canary, "stable": stable}
    queries = {"canary": spec.canary, "stable": spec.stable}

    # one instant for all four, so they come from the same scrape
    at = datetime.now(UTC)

    async def one(version: str, counter: str) -> float | None:
        query = getattr(queries[version], counter).replace(DESTINATION_PLACEHOLDER, hosts[version])
        source = PrometheusMetricSource(
            address=server.address,
            query=query,
            bearer_token_env=server.bearer_token_env,
            bearer_token_file=server.bearer_token_file,
            timeout=server.timeout,
        )
        return await PrometheusProvider(source, field=f"{field}.prometheus").run_query(query, at)

    values = await asyncio.gather(*(one(version, counter) for version, counter, _ in _COUNTERS))
    for (version, counter, _), value in zip(_COUNTERS, values, strict=True):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise MetricProviderError(f"{version}.{counter}: {value:g} is not a counter's value")
    missing = [
        f"{version}.{counter}"
        for (version, counter, _), v in zip(_COUNTERS, values, strict=True)
        if v is None
    ]
    if missing:
        hint = "a counter that appears with the first error needs `or vector(0)`"
        return f"no data from {', '.join(missing)} ({hint})"
    return Counters(**{name: value for (_, _, name), value in zip(_COUNTERS, values, strict=True)})


async def _from_envoy(spec: SequentialSpec, stable: str, canary: str, field: str) -> Counters:
    admin = spec.envoy
    assert admin is not None

    def provider(cluster: str) -> EnvoyProvider:
        source = EnvoyMetricSource(
            admin=admin.admin, cluster=cluster, measure="errorRate", timeout=admin.timeout
        )
        return EnvoyProvider(source, field=f"{field}.envoy")

    canary_reading, stable_reading = await asyncio.gather(provider(canary).read(), provider(stable).read())
    return Counters(
        canary_errors=canary_reading.errors,
        canary_requests=canary_reading.completed,
        stable_errors=stable_reading.errors,
        stable_requests=stable_reading.completed,
    )


async def read_counters(spec: SequentialSpec, stable: str, canary: str, field: str) -> Counters | str:
    """The four counters now, or why there are none (a query without an answer). Raises
    :class:`~activities.metrics.MetricProviderError` when a provider cannot answer."""
    if spec.prometheus is not None:
        return await _from_prometheus(spec, stable, canary, field)
    return await _from_envoy(spec, stable, canary, field)


def _carried(carried_state: dict[str, Any] | None) -> SequentialState | None:
    # not a state of this test (another kind of metric had this name in an older spec): start over
    try:
        return None if carried_state is None else SequentialState.model_validate(carried_state)
    except ValidationError:
        return None


async def measure_sequential(
    metric: MetricSpec,
    stable: str,
    canary: str,
    carried_state: dict[str, Any] | None,
    field: str,
) -> tuple[Measurement, dict[str, Any] | None]:
    """One measurement of a ``sequential`` metric and the state to carry to the next."""
    spec = metric.sequential
    assert spec is not None
    reading = await read_counters(spec, stable, canary, f"{field}.sequential")
    now = datetime.now(UTC)
    if isinstance(reading, str):
        inconclusive = Measurement(
            metric=metric.name, value=None, verdict="Inconclusive", message=f"no data: {reading}", at=now
        )
        return inconclusive, carried_state
    state, step = observe(_carried(carried_state), reading, tolerance=spec.tolerance, alpha=spec.alpha)
    failed, evidence, message = judge(state, step, spec.alpha)
    measurement = Measurement(
        metric=metric.name,
        value=evidence.e_value,
        verdict="Failed" if failed else "Successful",
        message=message,
        at=now,
        sequential=evidence,
    )
    return measurement, state.model_dump(mode="json")

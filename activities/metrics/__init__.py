"""Metrics providers: one module per backend behind :class:`MetricProvider`;
:func:`build_provider` is the only place that lists them all."""

from __future__ import annotations

from typing import Any

import httpx

from activities.metrics._base import MetricProvider, MetricProviderError, RangeMetricProvider
from activities.metrics.envoy import EnvoyProvider
from activities.metrics.prometheus import PrometheusProvider
from workflows.analysis import EnvoyMetricSource, PrometheusMetricSource

__all__ = [
    "EnvoyProvider",
    "MetricProvider",
    "MetricProviderError",
    "PrometheusProvider",
    "RangeMetricProvider",
    "build_provider",
    "build_range_provider",
]


def build_provider(
    source: PrometheusMetricSource | EnvoyMetricSource,
    *,
    carried_state: dict[str, Any] | None = None,
    max_baseline_age_seconds: float = 300.0,
    transport: httpx.AsyncBaseTransport | None = None,
    field: str | None = None,
) -> MetricProvider:
    """The provider for a metric's source section; ``carried_state`` is what the metric's
    previous provider asked to carry (:attr:`MetricProvider.carried_state`); ``field`` is where
    the source is in the spec, for refusals (``analysis.metrics[0].prometheus``)."""
    if isinstance(source, PrometheusMetricSource):
        return PrometheusProvider(source, transport=transport, field=field or "prometheus")
    if isinstance(source, EnvoyMetricSource):
        return EnvoyProvider.resume(
            source,
            carried_state,
            max_baseline_age_seconds=max_baseline_age_seconds,
            transport=transport,
            field=field or "envoy",
        )
    raise MetricProviderError(f"no metrics provider for {type(source).__name__}")


def build_range_provider(
    source: PrometheusMetricSource,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    field: str = "compare.prometheus",
) -> RangeMetricProvider:
    """The provider that reads series over a window for ``compare`` (Prometheus today)."""
    return PrometheusProvider(source, transport=transport, field=field)

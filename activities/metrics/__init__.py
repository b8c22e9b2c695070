"""Metrics providers: one module per backend behind :class:`MetricProvider`;
:func:`build_provider` is the only place that lists them all."""

from __future__ import annotations

import httpx

from activities.metrics._base import MetricProvider, MetricProviderError, RangeMetricProvider
from activities.metrics.envoy import EnvoyProvider
from activities.metrics.prometheus import PrometheusProvider
from workflows.analysis import EnvoyMetricSource, PrometheusMetricSource
from workflows.measurements import EnvoySnapshot

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
    baseline: EnvoySnapshot | None = None,
    max_baseline_age_seconds: float = 300.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> MetricProvider:
    """The provider for a metric's source section (``baseline``: Envoy's previous reading)."""
    if isinstance(source, PrometheusMetricSource):
        return PrometheusProvider(source, transport=transport)
    if isinstance(source, EnvoyMetricSource):
        return EnvoyProvider(
            source,
            baseline,
            max_baseline_age_seconds=max_baseline_age_seconds,
            transport=transport,
        )
    raise MetricProviderError(f"no metrics provider for {type(source).__name__}")


def build_range_provider(
    source: PrometheusMetricSource, *, transport: httpx.AsyncBaseTransport | None = None
) -> RangeMetricProvider:
    """The provider that reads series over a window for ``compare`` (Prometheus today)."""
    return PrometheusProvider(source, transport=transport)

"""The ``analysis:`` section of a rollout spec: which metrics to watch, how often, and their limits.

Three kinds of metric source, exactly one per metric:

- ``prometheus``: an instant query that returns one number (``max``/``min`` judge it);
- ``envoy``: a cluster's p99 latency or error rate read from an Envoy admin endpoint;
- ``compare``: one Prometheus query template run for stable and canary over the same window,
  judged with Kayenta's Mann-Whitney method (see :mod:`workflows.mannwhitney`);
- ``sequential``: canary and stable error and request counters, judged with an anytime-valid
  sequential test (see :mod:`workflows.sequential_spec` and :mod:`workflows.sequential`).

Limits follow Argo Rollouts: a metric fails once it has more than ``failureLimit`` failed
measurements, pauses the rollout once it has more than ``inconclusiveLimit`` inconclusive ones (no
data), and fails once it has more than ``consecutiveErrorLimit`` provider errors in a row.

Credentials never live here (the spec is stored in Temporal's history): a bearer token is named by
the worker's environment variable (``bearerTokenEnv``) or by a file on the worker
(``bearerTokenFile``).

The models share :class:`workflows.spec._SpecModel`'s conventions (camelCase keys, unknown keys
refused, frozen) so ``RolloutSpec`` can hold ``analysis: AnalysisSpec | None``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator, model_validator

from workflows._base import _SpecModel, http_url
from workflows._durations import Duration
from workflows.prometheus_source import PrometheusServer
from workflows.sequential_spec import SequentialSpec

__all__ = [
    "DESTINATION_PLACEHOLDER",
    "AnalysisSpec",
    "CompareSpec",
    "Direction",
    "EnvoyMeasure",
    "EnvoyMetricSource",
    "MetricSpec",
    "PrometheusMetricSource",
    "SequentialSpec",
]

DESTINATION_PLACEHOLDER = "{{destination}}"
"""Replaced in a ``compare`` query by the stable, then the canary destination name."""

Direction = Literal["increase", "decrease", "either"]
EnvoyMeasure = Literal["p99LatencyMs", "errorRate"]


def _http_url(value: str) -> str:
    return http_url(value).rstrip("/")


class PrometheusMetricSource(PrometheusServer):
    """A Prometheus server and an instant query that returns a single number.

    An empty result is "no data" (inconclusive), as is NaN; more than one series is an error. Write
    ratios so a healthy service reads 0 rather than nothing, e.g.
    ``(sum(rate(errors[1m])) or vector(0)) / (sum(rate(total[1m])) > 0) or vector(0)``.
    """

    query: str = Field(min_length=1)
    """PromQL; for ``compare`` it must contain ``{{destination}}``."""


class EnvoyMetricSource(_SpecModel):
    """One upstream cluster's statistics from an Envoy admin endpoint.

    ``p99LatencyMs`` is the 99th percentile of ``upstream_rq_time`` and ``errorRate`` is
    ``upstream_rq_5xx / upstream_rq_completed``, both over the requests completed since the
    previous measurement (counter deltas, so one bad minute is not diluted by a good week).
    """

    admin: str
    """Envoy admin URL, e.g. ``http://127.0.0.1:9901``."""
    cluster: str = Field(min_length=1)
    """The upstream cluster's name (for the Envoy router, the canary destination's host)."""
    measure: EnvoyMeasure
    window: Duration = timedelta(seconds=5)
    """When there is no earlier reading to diff against, read twice this far apart."""
    timeout: Duration = timedelta(seconds=5)

    @field_validator("admin")
    @classmethod
    def _admin(cls, value: str) -> str:
        return _http_url(value)


class CompareSpec(_SpecModel):
    """Canary against stable: the same query for both, over the same window (Kayenta's judge).

    Every ``step`` of the last ``window`` gives one sample per destination; the samples are
    compared with a two-sided Mann-Whitney U test. Following Kayenta's ``MannWhitneyClassifier``:
    the canary is *High* when the lower end of the ``confidence`` interval for the shift
    (canary minus stable, Hodges-Lehmann) is above ``tolerance * |shift estimate|``, and
    *Low* when the upper end is below ``-tolerance * |estimate|``; a High (Low) result whose
    canary/stable mean ratio is below ``allowedIncrease`` (above ``allowedDecrease``) passes as too
    small to matter. ``direction`` says which of High/Low fails the metric.
    """

    prometheus: PrometheusMetricSource
    direction: Direction = "either"
    """Which change is bad: ``increase`` (errors, latency), ``decrease`` (throughput), or
    ``either`` (Kayenta's default)."""
    tolerance: float = Field(default=0.25, ge=0)
    """Kayenta's tolerance: the shift must exceed this fraction of its own estimate with
    ``confidence`` before it counts (Kayenta's default 0.25)."""
    confidence: float = Field(default=0.99, gt=0, lt=1)
    """Confidence level of the interval for the shift (Kayenta's ``confLevel``). 0.99 rather
    than Kayenta's 0.98: measured every 30s, an identical canary is failed at least once in a
    30-minute rollout 37% of the time at 0.95, 14% at 0.98, 5% at 0.99
    (``benchmarks/compare_confidence.py``)."""
    allowed_increase: float = Field(default=1.0, gt=0)
    """Kayenta's effect size floor: a High canary whose mean ratio is below this passes."""
    allowed_decrease: float = Field(default=1.0, gt=0)
    """Kayenta's effect size ceiling: a Low canary whose mean ratio is above this passes."""
    window: Duration = timedelta(minutes=2)
    """How far back the samples reach."""
    step: Duration = timedelta(seconds=10)
    """Distance between samples (the Prometheus range query's step)."""
    min_samples: int = Field(default=5, ge=2)
    """Fewer samples than this on either side is "no data" (inconclusive)."""

    @field_validator("prometheus")
    @classmethod
    def _templated(cls, value: PrometheusMetricSource) -> PrometheusMetricSource:
        if DESTINATION_PLACEHOLDER not in value.query:
            raise ValueError(
                f"query must contain {DESTINATION_PLACEHOLDER} (replaced by the stable and the "
                "canary destination), got " + repr(value.query)
            )
        return value

    @model_validator(mode="after")
    def _window(self) -> CompareSpec:
        if self.step <= timedelta(0):
            raise ValueError("step: must be positive")
        if self.window < self.step * (self.min_samples - 1):
            raise ValueError(
                f"window: must hold at least minSamples ({self.min_samples}) steps of "
                f"{self.step.total_seconds():g}s"
            )
        return self


_SOURCES = ("prometheus", "envoy", "compare", "sequential")


class MetricSpec(_SpecModel):
    """One watched metric: exactly one of ``prometheus``, ``envoy``, ``compare``, ``sequential``, and
    its limits."""

    name: str = Field(min_length=1, max_length=63)
    prometheus: PrometheusMetricSource | None = None
    envoy: EnvoyMetricSource | None = None
    compare: CompareSpec | None = None
    sequential: SequentialSpec | None = None
    max: float | None = None
    """A measurement above this fails (``prometheus``, ``envoy``)."""
    min: float | None = None
    """A measurement below this fails (``prometheus``, ``envoy``)."""
    failure_limit: int = Field(default=0, ge=0)
    """Failed measurements tolerated; one more rolls back (Argo's ``failureLimit``)."""
    inconclusive_limit: int = Field(default=0, ge=0)
    """Inconclusive (no data) measurements tolerated; one more pauses for a person."""
    consecutive_error_limit: int = Field(default=4, ge=0)
    """Provider errors in a row tolerated; one more fails the metric."""

    @model_validator(mode="after")
    def _one_source(self) -> MetricSpec:
        sources = [key for key in _SOURCES if getattr(self, key) is not None]
        if len(sources) != 1:
            found = ", ".join(sources) if sources else "none"
            raise ValueError(f"a metric has exactly one of {', '.join(_SOURCES)}, got {found}")
        if self.compare is not None or self.sequential is not None:
            if self.max is not None or self.min is not None:
                raise ValueError(f"max/min: {sources[0]} judges against stable; it takes no thresholds")
            if self.sequential is not None and self.failure_limit != 0:
                raise ValueError(
                    "failureLimit: sequential fails once its evidence reaches 1/alpha (alpha is its "
                    "only limit); leave failureLimit out"
                )
        elif self.max is None and self.min is None:
            raise ValueError("set max and/or min: a threshold the measurement is judged against")
        for bound in (self.max, self.min):
            if bound is not None and not math.isfinite(bound):
                raise ValueError(f"max/min: must be a finite number, got {bound}")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self

    @property
    def kind(self) -> Literal["prometheus", "envoy", "compare", "sequential"]:
        """Which source this metric reads."""
        if self.prometheus is not None:
            return "prometheus"
        if self.envoy is not None:
            return "envoy"
        if self.sequential is not None:
            return "sequential"
        return "compare"

    def threshold(self) -> str:
        """The thresholds as a person reads them: ``max 0.01``, ``min 5, max 10``, ``vs stable``."""
        if self.sequential is not None:
            return self.sequential.describe()
        if self.compare is not None:
            return f"vs stable ({self.compare.direction}, tolerance {self.compare.tolerance:g})"
        parts = []
        if self.min is not None:
            parts.append(f"min {self.min:g}")
        if self.max is not None:
            parts.append(f"max {self.max:g}")
        return ", ".join(parts)


class AnalysisSpec(_SpecModel):
    """Metric analysis that runs from the first traffic change to the end of the rollout."""

    interval: Duration = timedelta(seconds=30)
    """Every metric is measured once per interval, including while the rollout waits."""
    bake: Duration = timedelta(0)
    """Least time at each weight before the rollout may go on (gates still apply); 0: none."""
    metrics: list[MetricSpec] = Field(min_length=1)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError(f"must be at least 1s, got {value.total_seconds():g}s")
        return value

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, value: list[MetricSpec]) -> list[MetricSpec]:
        seen: set[str] = set()
        for metric in value:
            if metric.name in seen:
                raise ValueError(f"metric names must be unique, {metric.name!r} appears twice")
            seen.add(metric.name)
        return value

    def metric(self, name: str) -> MetricSpec:
        """The metric called ``name`` (KeyError when there is none)."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)

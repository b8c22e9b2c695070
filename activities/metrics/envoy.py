"""One Envoy cluster's error rate and p99 latency from the admin endpoint's ``/stats/prometheus``.

Envoy exports cumulative counters and histograms since it started, so a measurement is a
difference between two readings: ``errorRate`` is Δ``upstream_rq_5xx`` / Δ``upstream_rq_completed``
and ``p99LatencyMs`` is the 99th percentile of the Δ``upstream_rq_time`` histogram, interpolated
within its bucket as Prometheus's ``histogram_quantile`` does (Envoy's default buckets are coarse:
…, 50, 100, 250, 500 ms). No completed request between the readings is no data (None).

Where the earlier reading comes from decides whether retries are safe. The last reading
(:class:`EnvoySnapshot`) is the provider's carried state: the workflow keeps it as opaque JSON
and passes it back as ``baseline``; the provider reads once and diffs, and
:attr:`EnvoyProvider.snapshot` is the next baseline. A retried activity gets the same baseline
from the workflow, reads again, and its delta still spans exactly "since the previous
measurement" - nothing is lost or counted twice, and no state lives in the worker. Without a
usable baseline (the first measurement, a baseline older than ``max_baseline_age``, or counters
that went backwards because Envoy restarted) the provider reads twice, ``source.window`` apart.

Histograms reach the admin endpoint at each stats flush (``stats_flush_interval``, 5 s by default),
so the latency of the last few seconds may show up one measurement late.
"""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import Field, ValidationError

from activities.metrics._base import MetricProviderError, request
from workflows._base import _Model
from workflows.analysis import EnvoyMetricSource

__all__ = ["EnvoyProvider", "EnvoySnapshot", "delta_value", "parse_prometheus_text"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class EnvoySnapshot(_Model):
    """Cumulative counters of one Envoy cluster at one moment (the baseline for deltas).

    Carried by the workflow as the provider's state, in this model's JSON form: the same JSON
    that histories written before provider states were opaque hold under ``envoySnapshots``.
    """

    at: datetime
    completed: float
    """``upstream_rq_completed``."""
    errors: float
    """``upstream_rq_5xx`` (``upstream_rq_xx`` with response code class 5)."""
    latency_buckets: list[tuple[float, float]] = Field(default_factory=list)
    """``upstream_rq_time`` cumulative histogram: (upper bound in ms, count), ascending."""
    latency_count: float = 0.0
    uptime_seconds: float = 0.0
    """Envoy's ``server.uptime``: smaller than before means Envoy restarted and counters reset."""


def parse_prometheus_text(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text exposition: (metric name, labels, value)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        try:
            number = float(value)
        except ValueError:
            continue
        samples.append((name, dict(_LABEL.findall(labels or "")), number))
    return samples


def _snapshot(text: str, cluster: str, at: datetime) -> EnvoySnapshot:
    completed = errors = uptime = 0.0
    buckets: dict[float, float] = {}
    seen_cluster = False
    for name, labels, value in parse_prometheus_text(text):
        if name == "envoy_server_uptime":
            uptime = value
            continue
        if labels.get("envoy_cluster_name") != cluster:
            continue
        seen_cluster = True
        if name == "envoy_cluster_upstream_rq_completed":
            completed = value
        elif name == "envoy_cluster_upstream_rq_xx" and labels.get("envoy_response_code_class") == "5":
            errors = value  # absent until the cluster's first 5xx: then it stays 0 here
        elif name == "envoy_cluster_upstream_rq_time_bucket":
            bound = labels.get("le", "")
            buckets[math.inf if bound == "+Inf" else float(bound)] = value
    if not seen_cluster:
        raise MetricProviderError(f"envoy has no cluster named {cluster!r}")
    ordered = sorted(buckets.items())
    return EnvoySnapshot(
        at=at,
        completed=completed,
        errors=errors,
        latency_buckets=[(bound, count) for bound, count in ordered if math.isfinite(bound)],
        latency_count=ordered[-1][1] if ordered else 0.0,
        uptime_seconds=uptime,
    )


def _is_reset(before: EnvoySnapshot, after: EnvoySnapshot) -> bool:
    return (
        after.uptime_seconds < before.uptime_seconds
        or after.completed < before.completed
        or after.errors < before.errors
        or after.latency_count < before.latency_count
    )


def _quantile(q: float, buckets: list[tuple[float, float]], total: float) -> float:
    """``histogram_quantile``: linear interpolation inside the bucket holding rank q·total."""
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    # the rank lies in the +Inf bucket: the highest finite bound is all that is known
    return lower_bound


def delta_value(measure: str, before: EnvoySnapshot, after: EnvoySnapshot) -> float | None:
    """``errorRate`` or ``p99LatencyMs`` over the requests between two readings; None when no
    request completed in between."""
    if measure == "errorRate":
        completed = after.completed - before.completed
        if completed <= 0:
            return None
        return max(after.errors - before.errors, 0.0) / completed
    if measure == "p99LatencyMs":
        total = after.latency_count - before.latency_count
        if total <= 0:
            return None
        earlier = dict(before.latency_buckets)
        deltas = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after.latency_buckets]
        return _quantile(0.99, deltas, total)
    raise MetricProviderError(f"unknown envoy measure {measure!r}")


class EnvoyProvider:
    """A :class:`~activities.metrics.MetricProvider` for one cluster of one Envoy.

    ``run_query`` takes the measure's name (``errorRate`` or ``p99LatencyMs``) as its query.
    """

    def __init__(
        self,
        source: EnvoyMetricSource,
        baseline: EnvoySnapshot | None = None,
        *,
        max_baseline_age_seconds: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        field: str = "envoy",
    ) -> None:
        self.source = source
        self.field = field
        """Where the source is in the spec, for refusals (``analysis.metrics[0].envoy``)."""
        self.baseline = baseline
        self.max_baseline_age_seconds = max_baseline_age_seconds
        self.snapshot: EnvoySnapshot | None = None
        """The reading taken by the last ``run_query``: the next measurement's baseline."""
        self._transport = transport

    @classmethod
    def resume(
        cls,
        source: EnvoyMetricSource,
        carried_state: dict[str, Any] | None,
        *,
        max_baseline_age_seconds: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        field: str = "envoy",
    ) -> EnvoyProvider:
        """A provider whose baseline is the :attr:`carried_state` of the metric's last one.

        A state that is not a snapshot is no baseline (the provider reads twice) rather than an
        error: it can only come from a hand-edited history, and one slower measurement is enough.
        """
        try:
            baseline = None if carried_state is None else EnvoySnapshot.model_validate(carried_state)
        except ValidationError:
            baseline = None
        return cls(
            source,
            baseline,
            max_baseline_age_seconds=max_baseline_age_seconds,
            transport=transport,
            field=field,
        )

    @property
    def carried_state(self) -> dict[str, Any] | None:
        """The last reading as JSON, for the workflow to hand back as the next baseline."""
        return None if self.snapshot is None else self.snapshot.model_dump(mode="json")

    @property
    def _where(self) -> str:
        return f"envoy {self.source.admin} cluster {self.source.cluster}"

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        timeout = self.source.timeout.total_seconds()
        response = await request(
            self._where,
            self.source.admin,
            timeout,
            self._transport,
            "GET",
            path,
            field=f"{self.field}.admin",
            params=params,
        )
        if response.status_code != 200:
            # the body is not quoted: the admin address may be any page the worker reaches
            raise MetricProviderError(f"{self._where}: HTTP {response.status_code} from {path}")
        return response

    async def read(self) -> EnvoySnapshot:
        """Read the cluster's counters now."""
        name = re.escape(self.source.cluster)
        # Envoy filters on the stat's own name (before the Prometheus renaming)
        pattern = rf"^(cluster\.{name}\.upstream_rq_(completed|5xx|time)|server\.uptime)$"
        response = await self._get("/stats/prometheus", {"filter": pattern})
        try:
            return _snapshot(response.text, self.source.cluster, datetime.now(UTC))
        except MetricProviderError as error:
            raise MetricProviderError(f"{self._where}: {error}") from None

    def _usable(self, baseline: EnvoySnapshot | None, current: EnvoySnapshot) -> bool:
        if baseline is None or _is_reset(baseline, current):
            return False
        age = (current.at - baseline.at).total_seconds()
        return 0 <= age <= self.max_baseline_age_seconds

    async def run_query(self, query: str) -> float | None:
        """The measure named by ``query`` since the baseline (or over ``window``)."""
        if query not in ("errorRate", "p99LatencyMs"):
            raise MetricProviderError(f"{self._where}: unknown measure {query!r}")
        current = await self.read()
        baseline = self.baseline
        if not self._usable(baseline, current):
            baseline = current
            await asyncio.sleep(self.source.window.total_seconds())
            current = await self.read()
            if _is_reset(baseline, current):
                self.snapshot = current
                return None  # Envoy restarted between the two reads: nothing to diff
        self.snapshot = current
        assert baseline is not None
        return delta_value(query, baseline, current)

    async def is_online(self) -> bool:
        """True when the admin endpoint reports Envoy ``LIVE``."""
        try:
            response = await self._get("/ready")
        except MetricProviderError:
            return False
        return response.text.strip() == "LIVE"

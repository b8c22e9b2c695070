"""Measurements and their tallies: what ``measure_metrics`` returns and what the workflow keeps.

Everything here is stored in Temporal's history and carried across continue-as-new, so the
per-metric state is bounded: counters for the limits plus the last :data:`KEEP_MEASUREMENTS`
measurements for ``status`` and the final result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from workflows._base import _Model
from workflows.analysis import MetricSpec

__all__ = [
    "KEEP_MEASUREMENTS",
    "AnalysisOutcome",
    "AnalysisState",
    "Classification",
    "Comparison",
    "EnvoySnapshot",
    "MeasureInput",
    "MeasureResult",
    "Measurement",
    "MetricPhase",
    "MetricResult",
    "Verdict",
]

KEEP_MEASUREMENTS = 20
"""Measurements kept per metric in the workflow state (older ones live only in the counters)."""

Verdict = Literal["Successful", "Failed", "Inconclusive", "Error"]
"""One measurement's verdict (Argo's measurement phases)."""

MetricPhase = Literal["Running", "Failed", "Inconclusive", "Error"]
"""A metric's standing over all its measurements: ``Failed``/``Error`` roll back,
``Inconclusive`` pauses for a person, ``Running`` lets the rollout go on."""

Classification = Literal["Pass", "High", "Low", "Nodata"]
"""Kayenta's classification of a canary-vs-stable comparison."""


class Comparison(_Model):
    """The Mann-Whitney judgement of canary against stable (``compare`` metrics)."""

    classification: Classification
    reason: str = ""
    stable_samples: int = 0
    canary_samples: int = 0
    stable_mean: float | None = None
    canary_mean: float | None = None
    estimate: float | None = None
    """Hodges-Lehmann estimate of the shift, canary minus stable."""
    lower: float | None = None
    """Lower end of the confidence interval for the shift."""
    upper: float | None = None
    """Upper end of the confidence interval for the shift."""
    p_value: float | None = None
    """Two-sided p-value of the U test (for people; the verdict uses the interval, as Kayenta)."""
    mean_ratio: float | None = None
    """Canary mean / stable mean (Kayenta's effect size; 1.0 when the stable mean is 0)."""
    method: Literal["exact", "normal", ""] = ""


class Measurement(_Model):
    """One measurement of one metric: its value (None: no data), verdict and time."""

    metric: str
    value: float | None
    verdict: Verdict
    message: str = ""
    at: datetime
    comparison: Comparison | None = None


class EnvoySnapshot(_Model):
    """Cumulative counters of one Envoy cluster at one moment (the baseline for deltas).

    The workflow keeps the last snapshot per ``envoy`` metric and hands it to the next
    ``measure_metrics`` call, so a retried activity diffs against the same baseline and the delta
    always covers exactly the time since the previous measurement.
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


class MeasureInput(_Model):
    """Measure every metric once (activity ``measure_metrics``)."""

    metrics: list[MetricSpec]
    stable: str
    """The stable destination's name, put in ``compare`` queries for ``{{destination}}``."""
    canary: str
    """The canary destination's name, put in ``compare`` queries for ``{{destination}}``."""
    envoy_snapshots: dict[str, EnvoySnapshot] = Field(default_factory=dict)
    """Last reading per ``envoy`` metric name, from the previous :class:`MeasureResult`."""
    max_baseline_age_seconds: float = 300.0
    """An older snapshot is not diffed against (the window would be stale): read twice instead."""


class MeasureResult(_Model):
    """One measurement per metric, in spec order, and the new Envoy baselines."""

    measurements: list[Measurement]
    envoy_snapshots: dict[str, EnvoySnapshot] = Field(default_factory=dict)


class MetricResult(_Model):
    """A metric's tally since analysis started (or since a person resumed an inconclusive pause)."""

    name: str
    phase: MetricPhase = "Running"
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    message: str = ""
    """Why the phase is what it is (names the value and threshold when failed)."""
    measurements: list[Measurement] = Field(default_factory=list)
    """The last :data:`KEEP_MEASUREMENTS` measurements, oldest first."""


class AnalysisState(_Model):
    """Everything analysis carries from one measurement round to the next (and across
    continue-as-new)."""

    metrics: dict[str, MetricResult] = Field(default_factory=dict)
    envoy_snapshots: dict[str, EnvoySnapshot] = Field(default_factory=dict)
    rounds: int = 0


class AnalysisOutcome(_Model):
    """What the workflow must do after a round: go on, roll back, or pause for a person."""

    phase: Literal["Running", "Failed", "Inconclusive"]
    message: str = ""
    metric: str | None = None
    """The metric that decided a ``Failed``/``Inconclusive`` outcome."""

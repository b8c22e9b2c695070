"""Measurements and their tallies: what ``measure_metrics`` returns and what the workflow keeps.

Everything here is stored in Temporal's history and carried across continue-as-new, so the
per-metric state is bounded: counters for the limits plus the last :data:`KEEP_MEASUREMENTS`
measurements for ``status`` and the final result.

A metrics provider may ask for a small JSON state to be carried to its next measurement of the
same metric (Envoy: its counter baseline). The workflow keeps it per metric name in
:data:`ProviderStates` and hands it back without looking inside.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field

from workflows._base import _Model
from workflows.analysis import MetricSpec
from workflows.sequential import SequentialEvidence

__all__ = [
    "KEEP_MEASUREMENTS",
    "AnalysisOutcome",
    "AnalysisState",
    "Classification",
    "Comparison",
    "MeasureInput",
    "MeasureResult",
    "Measurement",
    "MetricPhase",
    "MetricResult",
    "ProviderStates",
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
    """Two-sided p-value of the U test; the verdict uses the interval, as Kayenta, except where
    the interval is degenerate at 0 (zero-heavy data), where this decides."""
    mean_ratio: float | None = None
    """Canary mean / stable mean (Kayenta's effect size): 1.0 when both are 0, None when only the
    stable mean is 0 (a rise from zero passes no ``allowedIncrease``)."""
    method: Literal["exact", "normal", ""] = ""


class Measurement(_Model):
    """One measurement of one metric: its value (None: no data), verdict and time."""

    metric: str
    value: float | None
    verdict: Verdict
    message: str = ""
    at: datetime
    comparison: Comparison | None = None
    sequential: SequentialEvidence | None = None
    """A ``sequential`` metric's evidence and the counts behind it."""


ProviderStates = Annotated[
    dict[str, dict[str, Any]],
    Field(
        # Histories and checkpoints written before provider states were opaque carry the same
        # JSON (an Envoy snapshot per metric) under ``envoySnapshots``: still accepted.
        validation_alias=AliasChoices(
            "providerStates", "provider_states", "envoySnapshots", "envoy_snapshots"
        ),
        serialization_alias="providerStates",
    ),
]
"""Per metric name, the JSON state its provider asked to carry to its next measurement."""


class MeasureInput(_Model):
    """Measure every metric once (activity ``measure_metrics``)."""

    metrics: list[MetricSpec]
    stable: str
    """The stable destination's name, put in ``compare`` queries for ``{{destination}}``."""
    canary: str
    """The canary destination's name, put in ``compare`` queries for ``{{destination}}``."""
    provider_states: ProviderStates = Field(default_factory=dict)
    """What each metric's provider asked to carry, from the previous :class:`MeasureResult`."""
    max_baseline_age_seconds: float = 300.0
    """An older snapshot is not diffed against (the window would be stale): read twice instead."""


class MeasureResult(_Model):
    """One measurement per metric, in spec order, and the states their providers ask to carry."""

    measurements: list[Measurement]
    provider_states: ProviderStates = Field(default_factory=dict)


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
    provider_states: ProviderStates = Field(default_factory=dict)
    rounds: int = 0


class AnalysisOutcome(_Model):
    """What the workflow must do after a round: go on, roll back, or pause for a person."""

    phase: Literal["Running", "Failed", "Inconclusive"]
    message: str = ""
    metric: str | None = None
    """The metric that decided a ``Failed``/``Inconclusive`` outcome."""

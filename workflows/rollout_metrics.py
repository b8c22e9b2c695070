"""sluicegate's own metrics: what each is called, its kind and labels, and how a rollout records them.

The worker serves them at ``/metrics`` beside the Temporal SDK's own (:mod:`worker.metrics`),
through the SDK's metric meter. Workflow code records through ``workflow.metric_meter()``,
which the SDK makes replay-safe: nothing is recorded while a workflow task replays history, so a
rollout that moves to another worker, or replays after a cache eviction, counts nothing twice.
A metric is not a command: recording one leaves no trace in history, so saved histories replay
unchanged and no ``workflow.patched`` is needed.

Low-cardinality labels only: ``service``, ``router`` (kind), ``outcome``, ``type``, ``result``,
``verdict``. The SDK adds ``namespace``, ``task_queue`` and ``workflow_type`` (workflow side) or
``activity_type`` (activity side), and ``service_name="temporal-core-sdk"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import MetricCounter, MetricHistogramFloat

from workflows.models import EventRecord

__all__ = [
    "APPROVAL_WAIT",
    "APPROVAL_WAIT_BUCKETS",
    "MEASUREMENTS",
    "ROLLBACKS",
    "ROLLOUTS_FINISHED",
    "ROLLOUTS_STARTED",
    "ROUTE_CHANGES",
    "SLUICE_METRICS",
    "VERIFICATIONS",
    "MetricDefinition",
    "RolloutMetrics",
    "outcome_of",
]


@dataclass(frozen=True)
class MetricDefinition:
    """One of sluicegate's metrics as Prometheus shows it (the README's table lists the same)."""

    name: str
    kind: Literal["counter", "histogram"]
    labels: tuple[str, ...]
    help: str

    @property
    def series(self) -> tuple[str, ...]:
        """The names Prometheus stores it under (a histogram's buckets, sum and count)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


ROLLOUTS_STARTED = MetricDefinition(
    "sluice_rollouts_started_total", "counter", ("service", "router"),
    "Rollouts started (a run continued as new is the same rollout; a refused spec counts with empty labels)",
)  # fmt: skip
ROLLOUTS_FINISHED = MetricDefinition(
    "sluice_rollouts_finished_total", "counter", ("service", "router", "outcome"),
    "Rollouts ended, by outcome: succeeded, rolledBack or failed",
)  # fmt: skip
ROLLBACKS = MetricDefinition(
    "sluice_rollbacks_total", "counter", ("service", "router", "type"),
    "Rollbacks started, by why (RolloutAborted, AnalysisFailed, VerificationFailed, ApprovalTimedOut, ...)",
)  # fmt: skip
APPROVAL_WAIT = MetricDefinition(
    "sluice_approval_wait_seconds", "histogram", ("service",),
    "Seconds an approval gate waited, from the gate's start to its release by approve or promote",
)  # fmt: skip
VERIFICATIONS = MetricDefinition(
    "sluice_verifications_total", "counter", ("service", "result"),
    "Checks of the served split after a traffic change, by result: passed or failed",
)  # fmt: skip
MEASUREMENTS = MetricDefinition(
    "sluice_measurements_total", "counter", ("service", "verdict"),
    "Analysis measurements, by verdict: Successful, Failed, Inconclusive or Error",
)  # fmt: skip
ROUTE_CHANGES = MetricDefinition(
    "sluice_route_changes_total", "counter", ("service", "router", "result"),
    "Route writes (set_weights, remove_old_route attempts), by result: succeeded, drifted, failed, cancelled",
)  # fmt: skip

SLUICE_METRICS = (
    ROLLOUTS_STARTED, ROLLOUTS_FINISHED, ROLLBACKS, APPROVAL_WAIT, VERIFICATIONS, MEASUREMENTS, ROUTE_CHANGES,
)  # fmt: skip
"""Every metric sluicegate itself exports (the dashboard test holds its panels to these)."""

APPROVAL_WAIT_BUCKETS = (
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0,
    172800.0, 604800.0,
)  # fmt: skip
"""Upper bounds, in seconds, of the approval-wait histogram: a second to a week (gates can wait)."""

_OUTCOMES = {"Succeeded": "succeeded", "RolledBack": "rolledBack", "Failed": "failed"}


def outcome_of(phase: str) -> str:
    """The ``outcome`` label of a rollout that ended in ``phase``."""
    return _OUTCOMES.get(phase, "failed")


class RolloutMetrics:
    """Records one rollout's metrics; call only from workflow code (the meter is the workflow's).

    The rollout-level counters follow from events (:meth:`recorded`, called by the event sink);
    the others are called where the thing is judged (a gate released, a split checked, a
    measurement returned)."""

    def __init__(self, service: str, router: str) -> None:
        self.labels = {"service": service, "router": router}
        self._counters: dict[str, MetricCounter] = {}
        self._histograms: dict[str, MetricHistogramFloat] = {}

    def _count(self, metric: MetricDefinition, **labels: str) -> None:
        counter = self._counters.get(metric.name)
        if counter is None:
            counter = workflow.metric_meter().create_counter(metric.name, metric.help)
            self._counters[metric.name] = counter
        values = {**self.labels, **labels}
        counter.add(1, {name: values[name] for name in metric.labels})

    def recorded(self, record: EventRecord) -> None:
        """An event was recorded: count the rollout starting, ending or rolling back."""
        if record.event == "rolloutStarted":
            self._count(ROLLOUTS_STARTED)
        elif record.event == "rolloutEnded":
            self._count(ROLLOUTS_FINISHED, outcome=outcome_of(str(record.detail.get("phase", ""))))
        elif record.event == "rollbackStarted":
            self._count(ROLLBACKS, type=str(record.detail.get("type", "")))

    def spec_refused(self) -> None:
        """A spec that did not validate: the rollout started and failed at once (no labels known)."""
        self._count(ROLLOUTS_STARTED, service="", router="")
        self._count(ROLLOUTS_FINISHED, service="", router="", outcome="failed")

    def approval_released(self, waited: timedelta) -> None:
        """An approval gate was released after waiting ``waited``."""
        histogram = self._histograms.get(APPROVAL_WAIT.name)
        if histogram is None:
            histogram = workflow.metric_meter().create_histogram_float(
                APPROVAL_WAIT.name, APPROVAL_WAIT.help, "s"
            )
            self._histograms[APPROVAL_WAIT.name] = histogram
        histogram.record(max(0.0, waited.total_seconds()), {"service": self.labels["service"]})

    def verified(self, passed: bool) -> None:
        """A check of the served split ended."""
        self._count(VERIFICATIONS, result="passed" if passed else "failed")

    def measured(self, verdicts: Iterable[str]) -> None:
        """Analysis measurements came back with these verdicts."""
        for verdict in verdicts:
            self._count(MEASUREMENTS, verdict=verdict)

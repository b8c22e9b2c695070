"""The rollout's observable state: what the ``status`` query and the result report."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, computed_field, model_validator

from workflows._base import _Model
from workflows._durations import format_duration
from workflows.measurements import MetricResult
from workflows.models import (
    ApprovalRecord,
    EventRecord,
    OldWorkload,
    RouteState,
    SampleResult,
    Weights,
)
from workflows.spec import RolloutSpec, Step

__all__ = [
    "KEEP_EVENTS",
    "PHASES",
    "TERMINAL_PHASES",
    "PauseCondition",
    "PauseReason",
    "PauseRecord",
    "RolloutStatus",
    "StepView",
    "VerificationRecord",
    "WaitingFor",
    "describe_step",
    "plan_view",
]

PHASES = (
    "Initializing",
    "Progressing",
    "Verifying",
    "WaitingForApproval",
    "WaitingForWindow",
    "Paused",
    "Baking",
    "Succeeded",
    "RollingBack",
    "RolledBack",
    "Failed",
)
TERMINAL_PHASES = frozenset({"Succeeded", "RolledBack", "Failed"})

KEEP_EVENTS = 100
"""Events kept in ``status.events`` (the newest); ``status.eventCounts`` counts every one, and the
workflow history keeps them all. Bounds what a long rollout carries across continue-as-new."""

PauseReason = Literal["Manual", "Drift", "InconclusiveAnalysis", "ApprovalTimedOut"]
"""Why a rollout holds (Argo Rollouts' ``PauseReason``): a person's ``pause``, a route changed
behind the rollout's back, analysis without data past its ``inconclusiveLimit``, or an approval
gate's ``timeout`` with ``onTimeout: pause``."""


class StepView(_Model):
    """One plan step as status shows it. Index 0 is the implicit initialisation step."""

    index: int
    kind: str
    description: str
    state: Literal["pending", "running", "done", "skipped"] = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    approved_by: list[str] = Field(default_factory=list)
    """Approval gates: who approved it so far, each once."""
    approvals_required: int | None = None
    """Approval gates: distinct approvers its policy needs."""
    runs: int = 1
    """Workflow runs this rollout has used (a long wait continues-as-new to keep history small)."""


class WaitingFor(_Model):
    """What the rollout waits for right now, and until when (None: no deadline)."""

    kind: Literal["approval", "resume", "bake", "route", "ready", "window"]
    step: int
    since: datetime
    until: datetime | None = None
    reason: str = ""
    hint: str = ""
    """What a person can send to end the wait."""
    approved_by: list[str] = Field(default_factory=list)
    """At an approval gate: who approved it so far, each once."""
    still_needed: int | None = None
    """At an approval gate: distinct approvals it still needs."""


class PauseRecord(_Model):
    """``status.paused``: the newest pause condition as one record (who, why, since when)."""

    by: str
    reason: str = ""
    at: datetime


class PauseCondition(_Model):
    """One reason the rollout holds. It holds while any is present; ``resume``/``promote`` clear all."""

    reason: PauseReason
    by: str
    """``analysis``, ``sluicegate`` (drift) or the person who paused."""
    message: str = ""
    since: datetime

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PauseCondition:
        """The condition an older rollout carried as a single ``paused`` record."""
        by = str(record.get("by", ""))
        reason: PauseReason = {"analysis": "InconclusiveAnalysis", "sluicegate": "Drift"}.get(by, "Manual")  # type: ignore[assignment]
        return cls(reason=reason, by=by, message=str(record.get("reason", "")), since=record["at"])


class VerificationRecord(_Model):
    """A sampling check of the served split after a traffic change."""

    step: int
    at: datetime
    result: SampleResult


class RolloutStatus(_Model):
    """Everything the ``status`` query answers (camelCase JSON)."""

    rollout_id: str
    service: str
    namespace: str
    requested_by: str | None = None
    """The spec's ``requestedBy``: who asked for this rollout."""
    phase: str = "Initializing"
    current_step: int = 0
    steps: list[StepView] = Field(default_factory=list)
    weights: Weights | None = None
    waiting_for: WaitingFor | None = None
    pause_conditions: list[PauseCondition] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    verifications: list[VerificationRecord] = Field(default_factory=list)
    analysis: list[MetricResult] = Field(default_factory=list)
    """Each metric's tally and its newest measurements."""
    events: list[EventRecord] = Field(default_factory=list)
    """The newest :data:`KEEP_EVENTS` events."""
    event_counts: dict[str, int] = Field(default_factory=dict)
    """Every event ever recorded, counted by kind."""
    original_route: RouteState | None = None
    drift: RouteState | None = None
    """The route as found when it differed from what the rollout last set (until resumed)."""
    old_workload: OldWorkload | None = None
    """What removeOld did to the old Deployment (or the error it met)."""
    warnings: list[str] = Field(default_factory=list)
    """What the router noticed about the route without refusing it (each once, oldest first)."""
    message: str = ""
    error_type: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runs: int = 1
    """Workflow runs this rollout has used (a long wait continues-as-new to keep history small)."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def paused(self) -> PauseRecord | None:
        """The newest pause condition, or None when nothing holds the rollout."""
        if not self.pause_conditions:
            return None
        newest = self.pause_conditions[-1]
        return PauseRecord(by=newest.by, reason=newest.message, at=newest.since)

    @model_validator(mode="before")
    @classmethod
    def _older_shapes(cls, data: Any) -> Any:
        """Read a status carried by an older worker: one ``paused`` record instead of conditions
        (``paused`` is derived now, so it is dropped on the way in)."""
        if isinstance(data, dict):
            data = dict(data)
            paused = data.pop("paused", None)
            if paused and not ({"pauseConditions", "pause_conditions"} & data.keys()):
                data["pauseConditions"] = [PauseCondition.from_record(paused)]
        return data

    def completion_message(self) -> str:
        """What a rollout that succeeded says: where traffic stands, and a workload left behind."""
        weights = self.weights or Weights(stable=100, canary=0)
        message = f"rollout complete at {weights.stable}% stable / {weights.canary}% canary"
        if self.old_workload is not None and self.old_workload.error is not None:
            message += f"; the old workload was NOT retired: {self.old_workload.error}"
        return message

    def add_event(self, event: EventRecord) -> None:
        """Keep ``event`` among the newest :data:`KEEP_EVENTS` and count it."""
        self.events.append(event)
        del self.events[:-KEEP_EVENTS]
        self.event_counts[event.event] = self.event_counts.get(event.event, 0) + 1

    def as_json(self) -> dict[str, Any]:
        """The camelCase JSON form the query, the result and the CLI use."""
        return self.model_dump(mode="json", by_alias=True)


def describe_step(step: Step) -> str:
    """A one-line human description of a spec step."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}% canary"
    if step.approval is not None:
        timeout = step.approval.timeout
        if timeout is None:
            return "approval"
        return f"approval (timeout {format_duration(timeout)}, then {step.approval.on_timeout})"
    if step.pause is not None:
        duration = step.pause.duration
        if duration is None:
            return "pause until resume/promote"
        return f"pause {format_duration(duration)}"
    if step.remove_old is not None:
        old = step.remove_old
        tail = (
            f", then {old.action} deployment {old.deployment} after {format_duration(old.delay)}"
            if old.deployment
            else ""
        )
        return "removeOld: 100% canary alone" + tail
    raise AssertionError("unknown step kind")


def plan_view(spec: RolloutSpec) -> list[StepView]:
    """Step 0 (read the route, set 100/0) followed by the spec's steps, numbered as the plan."""
    views = [
        StepView(
            index=0,
            kind="initialize",
            description=f"read the route, set 100% {spec.stable.label()} / 0% {spec.canary.label()}",
        )
    ]
    rules = spec.approval_rules()
    for number, step in enumerate(spec.steps, start=1):
        view = StepView(index=number, kind=step.kind, description=describe_step(step))
        if step.approval is not None:
            view.approvals_required = rules.at(number).required
        views.append(view)
    return views

"""Data passed between the workflow, its activities, its callers and its queries.

One model in and one out per activity and message, so fields can be added later without
breaking rollouts in flight. Everything here is stored in Temporal's history: never put a
secret in it (reference secrets by name; activities read them from the environment).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from workflows._base import _Model
from workflows.spec import Destination, RemoveOldStep, RouterSpec, VerifySpec

__all__ = [
    "AbortInput",
    "ApprovalRecord",
    "ApproveInput",
    "EventRecord",
    "MessageResult",
    "OldWorkload",
    "PauseInput",
    "PromoteInput",
    "Readiness",
    "RemoveOldInput",
    "ResumeInput",
    "RetireResult",
    "RouteInput",
    "RouteState",
    "SampleInput",
    "SampleResult",
    "SetWeightsInput",
    "Weights",
]


class Weights(_Model):
    """The split between the two versions (what the rollout sets always sums to 100)."""

    stable: int
    canary: int


# --- activities -------------------------------------------------------------------------


class RouteInput(_Model):
    """Which route object, and which destinations in it are stable and canary."""

    router: RouterSpec
    namespace: str
    stable: Destination
    canary: Destination
    service: str = ""
    rollout_id: str = ""
    selected: int | None = None
    """The rule / http route step 0 found for a spec that names none (its index): later calls
    keep to it, so the rollout's own removeOld cannot make another list look like the route."""


class SetWeightsInput(RouteInput):
    """Set the route to ``weights`` (adding a missing destination, keeping everything else)."""

    weights: Weights
    expected: Weights | None = None
    """What the rollout last set: when the route holds anything else, refuse (drift)."""


class RemoveOldInput(RouteInput):
    """Send 100% to the canary alone; ``remove_old`` says what to do with the old workload."""

    remove_old: RemoveOldStep = Field(default_factory=RemoveOldStep)
    expected: Weights | None = None


class RetireResult(_Model):
    """What ``retire_old_workload`` did to the old Deployment (kept in the rollout's result)."""

    namespace: str = ""
    deployment: str | None = None
    """None when the spec named no Deployment: only the route changed."""
    action: Literal["scaleToZero", "delete", "none"] = "none"
    replicas_before: int | None = None
    changed: bool = False
    """False when there was nothing to do (already at 0, no deployment named)."""
    message: str = ""


class OldWorkload(RetireResult):
    """``status.oldWorkload``: what removeOld did to the old Deployment, or the error it met
    (traffic is already 100% canary then: a failure is reported, never rolled back)."""

    error: str | None = None
    error_type: str | None = None


class Readiness(_Model):
    """What ``canary_ready`` found: can the canary serve yet, and what it waits for if not."""

    ready: bool
    reason: str = ""


class RouteState(_Model):
    """What a router read or wrote: the two destinations' weights (None when absent)."""

    stable: int | None
    canary: int | None
    others: dict[str, int] = Field(default_factory=dict)
    """Other destinations that take traffic (weight above 0), by label: they make a route unsafe
    to edit. A destination at weight 0 sends nothing and is not listed."""
    version: str = ""
    """The object's version after the call (resourceVersion, RDS version_info)."""
    description: str = ""
    """Where the route lives, for messages: ``envoy:/path/rds.yaml#reviews``."""
    warnings: list[str] = Field(default_factory=list)
    """What the router noticed but did not refuse (a mirror to the canary); recorded in
    ``status.warnings``. Empty in histories from before it existed."""
    selected: int | None = None
    """Which rule / http route the router chose because the spec named none (its index)."""

    def weights(self) -> Weights:
        """The two destinations' weights, an absent destination counting as 0."""
        return Weights(stable=self.stable or 0, canary=self.canary or 0)


class SampleInput(_Model):
    """Sample live traffic and test that it is served at ``weights``."""

    verify: VerifySpec
    weights: Weights
    stable_value: str
    canary_value: str


class SampleResult(_Model):
    """Counts of who answered, and the verdict of the statistical test."""

    samples: int
    stable: int
    canary: int
    other: dict[str, int] = Field(default_factory=dict)
    """Histories written before ``other_answers`` hold the other values' counts here; now it is
    always empty: the values come from the page ``verify.url`` reaches and are never recorded."""
    other_answers: int = 0
    """Classified answers that are neither version (a third version is serving, or the wrong page)."""
    other_versions: int = 0
    """How many distinct values those answers named (the values are in the worker's log only)."""
    unclassified: int = 0
    """Answers in which ``match``/``header`` found nothing."""
    errors: int = 0
    """Requests that failed (connection errors, timeouts)."""
    status_codes: dict[str, int] = Field(default_factory=dict)
    expected: Weights
    p_value: float
    alpha: float
    passed: bool
    reason: str = ""
    seconds: float = 0.0


# --- messages (signals and updates share these) ------------------------------------------


def _non_empty(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("must name who acts (a non-empty string)")
    return value.strip()


class _Message(_Model):
    by: str

    @field_validator("by")
    @classmethod
    def _by(cls, value: str) -> str:
        return _non_empty(value)


class ApproveInput(_Message):
    """``approve``: pass the approval gate the rollout waits at."""

    step: int | None = None
    """If set, refuse unless the rollout waits at this plan step."""
    comment: str = ""


class AbortInput(_Message):
    """``abort``: roll back to 100% stable now."""

    reason: str = ""


class PauseInput(_Message):
    """``pause``: hold at the current weights."""

    reason: str = ""


class ResumeInput(_Message):
    """``resume``: go on after a pause."""

    comment: str = ""


class PromoteInput(_Message):
    """``promote``: skip the current wait; ``full`` goes straight to 100%."""

    full: bool = False
    ignore_window: bool = False
    comment: str = ""


class MessageResult(_Model):
    """What an update answers: what it did, and where the rollout stands."""

    accepted: bool
    message: str
    phase: str
    current_step: int


# --- records kept in status and in the result --------------------------------------------


class ApprovalRecord(_Model):
    """Who approved which step, when, and how (signal or update)."""

    by: str
    step: int
    at: datetime
    comment: str = ""
    via: Literal["signal", "update"] = "update"
    kind: Literal["approve", "promote"] = "approve"


class EventRecord(_Model):
    """One thing that happened, for the audit trail in status and result."""

    at: datetime
    event: str
    step: int
    by: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)

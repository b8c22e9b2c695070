"""The one state object a rollout carries: held by the workflow, handed to continue-as-new as is.

Everything that must survive a continue-as-new lives in :class:`RolloutState` and nowhere else,
so a new field is one edit. The ``status`` inside it is what the ``status`` query answers; the
rest is bookkeeping people do not need to read. :func:`derive_phase` computes the phase from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from workflows._base import _Model
from workflows.approval_policy import ApprovalPolicy, ApprovalRules, distinct_approvers, still_needed
from workflows.errors import RolloutFailure
from workflows.measurements import AnalysisState
from workflows.models import AbortInput, ApprovalRecord, PromoteInput, Weights
from workflows.spec import RolloutSpec
from workflows.state import TERMINAL_PHASES, PauseCondition, PauseReason, RolloutStatus, plan_view

__all__ = ["RolloutState", "Stage", "derive_phase"]

Stage = Literal[
    "Initializing", "Progressing", "Verifying", "Succeeded", "RollingBack", "RolledBack", "Failed"
]
"""What the rollout itself is doing when it is not waiting (a wait's kind names the phase then)."""


class RolloutState(_Model):
    """Everything a rollout carries into its next run when it continues-as-new."""

    status: RolloutStatus
    stage: Stage = "Progressing"
    released_steps: list[int] = Field(default_factory=list)
    """Steps whose wait was ended by ``approve``/``promote``/``resume`` (see :meth:`release`)."""
    shifted_steps: list[int] = Field(default_factory=list)
    """``setWeight`` steps whose weights are set and verified (not shifted again after a resume)."""
    deadlines: dict[str, datetime] = Field(default_factory=dict)
    """When each timed wait ends, by ``kind:step``: a wait resumed in a later run keeps its end."""
    last_set: Weights | None = None
    """What the rollout last wrote to the route: anything else found there is drift."""
    traffic_touched: bool = False
    full_promotion: PromoteInput | None = None
    abort: AbortInput | None = None
    analysis_state: AnalysisState = Field(default_factory=AnalysisState)
    analysis_started: bool = False
    canary_ready: bool = False
    """The canary proved it can serve before its first traffic (asked once)."""
    route_claim: str | None = None
    """The workflow id of this rollout's ``RouteClaim`` while it owns its route."""
    holding: bool = False
    """Held between steps by a pause condition (the wait shown is a ``resume``, but no step's)."""
    legacy_phase_rules: bool = False
    """Runs that began before phases were derived keep the older display rules (replay)."""
    legacy_hold_release: bool = False
    """Runs that began before holds stopped releasing steps: a ``resume``/``promote`` during a hold
    also released the step about to run (a gate passed without approval). Kept for replay only."""
    window_released: bool = False
    """``promote {ignoreWindow: true}`` released the deployment window wait (used up by it)."""
    pause_hidden: bool = False
    """Older rules only: a wait that began while paused showed its own phase, not ``Paused``."""
    timed_out_gates: list[int] = Field(default_factory=list)
    """Gates whose ``timeout`` expired with ``onTimeout: pause``: they wait on without a deadline."""
    approval_rules: ApprovalRules = Field(default_factory=ApprovalRules, exclude=True)
    """The gates' policies, taken from the spec by every run (not carried: the spec is)."""

    @model_validator(mode="before")
    @classmethod
    def _from_checkpoint(cls, data: Any) -> Any:
        """Read the ``RolloutCheckpoint`` an older worker carried into continue-as-new."""
        if not isinstance(data, dict) or not ({"analysisHold", "phaseBeforePause"} & data.keys()):
            return data
        data = dict(data)
        data.pop("analysisHold", None)  # the pause condition from status.paused says the same
        shown = data.pop("phaseBeforePause", None) is not None
        status = data.get("status") or {}
        waiting = status.get("waitingFor") or {}
        paused = status.get("paused") is not None
        data["pauseHidden"] = paused and not shown and waiting.get("kind") not in (None, "resume")
        data["legacyPhaseRules"] = True
        data["legacyHoldRelease"] = True
        return data

    # -- pauses ----------------------------------------------------------------------

    def pause(self, reason: PauseReason, by: str, message: str, at: datetime) -> None:
        """Hold the rollout for ``reason`` (it holds while any condition is present)."""
        self.status.pause_conditions.append(PauseCondition(reason=reason, by=by, message=message, since=at))

    def clear_pauses(self) -> list[PauseCondition]:
        """End every hold (``resume``/``promote``); returns what was cleared."""
        cleared, self.status.pause_conditions = self.status.pause_conditions, []
        self.pause_hidden = False
        return cleared

    def paused_for(self, reason: PauseReason) -> bool:
        return any(c.reason == reason for c in self.status.pause_conditions)

    # -- approvals -------------------------------------------------------------------

    def approvals_at(self, step: int) -> list[ApprovalRecord]:
        """The approvals recorded at the gate at plan ``step``."""
        return [approval for approval in self.status.approvals if approval.step == step]

    def count_approval(self, approval: ApprovalRecord) -> ApprovalPolicy:
        """Record an accepted approval of the gate it names; release the gate once its policy has
        enough distinct approvers (a timed-out gate's hold ends with it). Returns the policy."""
        self.status.approvals.append(approval)
        step = approval.step
        policy = self.approval_rules.at(step)
        self.show_gate_progress(step)
        if still_needed(policy, self.approvals_at(step)) == 0:
            self.release(step)
            cleared = [c for c in self.status.pause_conditions if c.reason != "ApprovalTimedOut"]
            self.status.pause_conditions = cleared
        return policy

    def show_gate_progress(self, step: int) -> None:
        """Who approved the gate at ``step`` and how many it still needs, in ``steps`` and
        ``waitingFor``."""
        approvals = self.approvals_at(step)
        who = distinct_approvers(approvals)
        if step < len(self.status.steps):
            self.status.steps[step].approved_by = who
        waiting = self.status.waiting_for
        if waiting is not None and waiting.kind == "approval" and waiting.step == step:
            waiting.approved_by = who
            waiting.still_needed = still_needed(self.approval_rules.at(step), approvals)

    # -- waits -----------------------------------------------------------------------

    def release(self, step: int) -> None:
        """End the wait at ``step``: the one place a gate, a bake or a pause step is released."""
        if step not in self.released_steps:
            self.released_steps.append(step)

    def take_release(self, step: int) -> bool:
        """Whether ``step`` was released, forgetting it (so it cannot pass a later wait too)."""
        if step in self.released_steps:
            self.released_steps.remove(step)
            return True
        return False

    def releases_waiting_step(self) -> bool:
        """Whether ending the current wait releases its step: not for a hold between steps,
        whose step has not begun (older runs did release it; see :attr:`legacy_hold_release`)."""
        return not self.holding or self.legacy_hold_release

    @classmethod
    def fresh(cls, rollout_id: str, spec: RolloutSpec | None, raw: Any) -> RolloutState:
        """The state a new rollout starts with (for an invalid spec: what status can still say)."""
        service = spec.service if spec is not None else raw.get("service") if isinstance(raw, dict) else None
        status = RolloutStatus(
            rollout_id=rollout_id,
            service=service[:253] if isinstance(service, str) else "",
            namespace=spec.namespace if spec is not None else "",
            requested_by=spec.requested_by if spec is not None else None,
            steps=plan_view(spec) if spec is not None else [],
        )
        return cls(stage="Initializing", status=status)

    def abort_failure(self) -> RolloutFailure | None:
        """The rollback an accepted ``abort`` asks for (it always rolls back, once accepted)."""
        if self.abort is None:
            return None
        reason = f": {self.abort.reason}" if self.abort.reason else ""
        return RolloutFailure("RolloutAborted", f"aborted by {self.abort.by}{reason}")

    def finishing(self) -> bool:
        """Ended, rolling back, or about to (an abort was accepted)."""
        phase = self.status.phase
        return phase in TERMINAL_PHASES or phase == "RollingBack" or self.abort is not None


def derive_phase(state: RolloutState) -> str:
    """The phase people see, from the state: the stage unless a wait names it; ``Paused`` while
    any pause condition holds a waiting rollout."""
    waiting = state.status.waiting_for
    if state.stage in TERMINAL_PHASES or state.stage == "RollingBack" or waiting is None:
        return state.stage
    if waiting.kind in ("route", "ready"):
        return state.stage  # waiting for the route to be free or the canary to be ready
    if waiting.kind == "resume":
        return "Paused"
    if state.status.pause_conditions and not state.pause_hidden:
        return "Paused"
    if waiting.kind == "window":
        return "WaitingForWindow"  # outside the deployment windows or in a blackout: goes on by itself
    return "WaitingForApproval" if waiting.kind == "approval" else "Baking"

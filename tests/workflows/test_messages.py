"""The message rules and the derived phase, as plain functions: no server, the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from workflows.carried import RolloutState, derive_phase
from workflows.measurements import AnalysisState, MetricResult
from workflows.messages import MESSAGES, parse, unknown_signal_refusal
from workflows.models import AbortInput, ApproveInput, PauseInput, PromoteInput, ResumeInput
from workflows.state import RolloutStatus, WaitingFor

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def rollout(
    waiting: str | None = None, step: int = 2, phase: str = "WaitingForApproval", **extra: Any
) -> RolloutState:
    status = RolloutStatus(
        rollout_id="r", service="reviews", namespace="default", phase=phase, current_step=step
    )
    if waiting is not None:
        status.waiting_for = WaitingFor(kind=waiting, step=step, since=NOW)
    return RolloutState(status=status, **extra)


def paused(state: RolloutState, reason: str = "Manual", by: str = "erin") -> RolloutState:
    state.pause(reason, by, "holiday", NOW)  # type: ignore[arg-type]
    return state


def check(name: str, state: RolloutState, **payload: Any) -> str | None:
    message = MESSAGES[name]
    return message.check(state, message.model.model_validate({"by": "alice", **payload}))


@pytest.mark.parametrize(
    ("name", "state", "payload", "refusal"),
    [
        ("approve", rollout(None, phase="Progressing"), {}, "nothing is waiting for approval (phase Progr"),
        ("approve", rollout("bake", phase="Baking"), {}, "nothing is waiting for approval (phase Baking"),
        ("approve", rollout("approval"), {"step": 4}, "waits for approval at step 2, not step 4"),
        ("abort", rollout(None, phase="RolledBack"), {}, "already RolledBack"),
        ("abort", rollout("approval", abort=AbortInput(by="dave")), {}, "already WaitingForApproval"),
        ("pause", rollout(None, phase="Succeeded"), {}, "already Succeeded"),
        ("pause", paused(rollout("approval")), {}, "already paused by erin"),
        ("pause", paused(rollout("approval"), "InconclusiveAnalysis", "analysis"), {}, "paused by analysis"),
        ("resume", rollout("approval"), {}, "not paused (phase WaitingForApproval)"),
        ("promote", rollout(None, phase="Progressing"), {}, "nothing to skip"),
        ("promote", rollout(None, phase="RollingBack"), {"full": True}, "already RollingBack"),
        ("promote", rollout("approval", full_promotion=PromoteInput(by="frank", full=True)), {"full": True},
         "already fully promoted by frank"),
    ],
)  # fmt: skip
def test_refusals_name_the_reason(
    name: str, state: RolloutState, payload: dict[str, Any], refusal: str
) -> None:
    reason = check(name, state, **payload)
    assert reason is not None and refusal in reason


@pytest.mark.parametrize(
    ("name", "state", "payload"),
    [
        ("approve", rollout("approval"), {"step": 2}),
        ("approve", rollout("approval"), {}),
        ("abort", rollout("bake", phase="Baking"), {}),
        ("pause", rollout(None, phase="Progressing"), {}),
        ("resume", rollout("resume", phase="Paused"), {}),
        ("resume", paused(rollout("approval")), {}),
        ("promote", rollout("bake", phase="Baking"), {}),
        ("promote", paused(rollout(None, phase="Progressing")), {}),
        ("promote", rollout(None, phase="Progressing"), {"full": True}),
    ],
)
def test_allowed(name: str, state: RolloutState, payload: dict[str, Any]) -> None:
    assert check(name, state, **payload) is None


def test_approve_records_who_and_releases_only_the_waiting_gate() -> None:
    state = rollout("approval")
    applied = MESSAGES["approve"].apply(state, ApproveInput(by="alice", comment="lgtm"), "update", NOW)
    assert (applied.event, applied.step, applied.by) == ("approved", 2, "alice")
    assert applied.answer == "step 2 approved by alice"
    assert state.released_steps == [2]
    [record] = state.status.approvals
    assert (record.by, record.step, record.at, record.comment, record.via) == (
        "alice",
        2,
        NOW,
        "lgtm",
        "update",
    )


def test_abort_is_remembered_and_refuses_what_follows() -> None:
    state = rollout("approval")
    applied = MESSAGES["abort"].apply(state, AbortInput(by="dave", reason="p99"), "signal", NOW)
    assert applied.detail == {"via": "signal", "reason": "p99"}
    assert state.abort == AbortInput(by="dave", reason="p99")
    assert check("pause", state) is not None and check("promote", state) is not None


def test_pause_adds_a_manual_condition_and_the_phase_shows_it_over_a_wait() -> None:
    state = rollout("approval")
    applied = MESSAGES["pause"].apply(state, PauseInput(by="erin", reason="incident"), "update", NOW)
    assert applied.hold_changed
    [condition] = state.status.pause_conditions
    assert (condition.reason, condition.by, condition.message, condition.since) == (
        "Manual",
        "erin",
        "incident",
        NOW,
    )
    assert state.status.paused is not None and state.status.paused.by == "erin"
    assert derive_phase(state) == "Paused"


def test_resume_ends_the_hold_and_a_pause_step_but_not_a_gate() -> None:
    at_gate = paused(rollout("approval"))
    MESSAGES["resume"].apply(at_gate, ResumeInput(by="erin"), "update", NOW)
    assert at_gate.status.pause_conditions == [] and at_gate.released_steps == []
    assert derive_phase(at_gate) == "WaitingForApproval"

    at_pause_step = rollout("resume", step=3, phase="Paused")
    MESSAGES["resume"].apply(at_pause_step, ResumeInput(by="erin"), "signal", NOW)
    assert at_pause_step.released_steps == [3]


def test_resume_after_an_inconclusive_hold_tolerates_no_data_again() -> None:
    metric = MetricResult(name="errors", phase="Inconclusive", inconclusive=3, count=3, message="no data")
    state = paused(
        rollout("approval", analysis_state=AnalysisState(metrics={"errors": metric})),
        "InconclusiveAnalysis",
        "analysis",
    )
    MESSAGES["resume"].apply(state, ResumeInput(by="erin"), "update", NOW)
    reset = state.analysis_state.metrics["errors"]
    assert (reset.phase, reset.inconclusive, reset.count) == ("Running", 0, 3)


def test_promote_at_a_gate_counts_as_its_approval_and_full_goes_to_100() -> None:
    state = paused(rollout("approval"))
    applied = MESSAGES["promote"].apply(state, PromoteInput(by="frank", full=True), "update", NOW)
    assert applied.answer == "promoted by frank: going straight to 100% canary"
    assert state.released_steps == [2] and state.status.pause_conditions == []
    assert [(a.by, a.step, a.kind) for a in state.status.approvals] == [("frank", 2, "promote")]
    assert state.full_promotion is not None and state.full_promotion.by == "frank"


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ("yes", "payload must be a JSON object"),
        ({}, "by: required"),
        ({"by": "  "}, "must name who acts"),
        ({"by": "alice", "stepp": 2}, "stepp"),
        ({"by": "alice", "step": "4"}, "step: Input should be a valid integer, got '4'"),
        ({"by": "alice", "step": 4.0}, "step: Input should be a valid integer, got 4.0"),
        ({"by": "alice", "step": False}, "step: Input should be a valid integer, got False"),
        ({"by": "alice", "comment": 5}, "comment: Input should be a valid string, got 5"),
        ("x" * 1000, 'payload must be a JSON object like {"by": "alice"}, got str'),
    ],
)
def test_payloads_are_parsed_with_the_field_named(payload: Any, problem: str) -> None:
    request, refusal = parse("approve", payload, ApproveInput)
    assert request is None and refusal is not None and refusal.startswith("approve: ") and problem in refusal


def test_payloads_are_strict_unless_replaying_older_rules() -> None:
    assert parse("promote", {"by": "a", "full": True}, PromoteInput) == (
        PromoteInput(by="a", full=True),
        None,
    )
    assert parse("promote", {"by": "a", "full": "true"}, PromoteInput)[0] is None
    lax, refusal = parse("promote", {"by": "a", "full": "true"}, PromoteInput, strict=False)
    assert lax == PromoteInput(by="a", full=True) and refusal is None


def test_an_unknown_signal_name_is_refused_with_the_known_names() -> None:
    assert unknown_signal_refusal("aprove") == (
        "unknown signal 'aprove' (known: abort, approve, pause, promote, resume)"
    )
    assert len(unknown_signal_refusal("x" * 10_000)) < 200


@pytest.mark.parametrize(
    ("stage", "waiting", "conditions", "phase"),
    [
        ("Progressing", None, [], "Progressing"),
        ("Verifying", None, ["Manual"], "Verifying"),  # a pause takes effect before the next step
        ("Progressing", "approval", [], "WaitingForApproval"),
        ("Progressing", "bake", [], "Baking"),
        ("Progressing", "resume", [], "Paused"),
        ("Progressing", "approval", ["Drift"], "Paused"),
        ("Progressing", "bake", ["InconclusiveAnalysis"], "Paused"),
        ("RollingBack", "approval", ["Manual"], "RollingBack"),
        ("Succeeded", None, [], "Succeeded"),
    ],
)
def test_the_phase_is_derived_from_the_state(
    stage: str, waiting: str | None, conditions: list[str], phase: str
) -> None:
    state = rollout(waiting, stage=stage)
    for reason in conditions:
        paused(state, reason)
    assert derive_phase(state) == phase

"""The rules of the human actions, as pure functions of the carried state (the clock passed in).

Each message has a ``check`` (None: allowed, else the reason it is refused) and an ``apply``
that changes the state and returns what happened. The workflow runs both for signals and for
updates (whose validator runs ``check`` alone), records the outcome and publishes the phase;
everything here is testable without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from workflows.approval_policy import approver_refusal, progress_answer
from workflows.carried import RolloutState
from workflows.judge import resume_after_inconclusive
from workflows.models import (
    AbortInput,
    ApprovalRecord,
    ApproveInput,
    PauseInput,
    PromoteInput,
    ResumeInput,
)
from workflows.spec import validation_problems

__all__ = ["MESSAGES", "Applied", "Message", "Via", "parse", "unknown_signal_refusal"]

Via = Literal["signal", "update"]
Request = TypeVar("Request", bound=BaseModel)


@dataclass(frozen=True)
class Applied:
    """What an accepted message did: the event to record and the answer to the caller."""

    event: str
    step: int
    by: str
    answer: str
    detail: dict[str, Any] = field(default_factory=dict)
    hold_changed: bool = False
    """A pause condition came or went (the phase may show it)."""


def check_approve(state: RolloutState, request: ApproveInput) -> str | None:
    waiting = state.status.waiting_for
    if waiting is None or waiting.kind != "approval":
        return (
            f"nothing is waiting for approval (phase {state.status.phase}, step {state.status.current_step})"
        )
    if request.step is not None and request.step != waiting.step:
        return f"the rollout waits for approval at step {waiting.step}, not step {request.step}"
    if waiting.step in state.released_steps:
        return _already_passed(state, waiting.step)
    return _gate_refusal(state, request.by, waiting.step)


def _gate_refusal(state: RolloutState, by: str, step: int | None) -> str | None:
    """Why ``by`` may not approve the gate at ``step`` (None: away from a gate, whether they are
    an allowed approver of the spec's policy at all)."""
    rules = state.approval_rules
    approvals = state.approvals_at(step) if step is not None else []
    return approver_refusal(rules.at(step), by, rules.requested_by, approvals)


def _already_passed(state: RolloutState, step: int) -> str:
    """Two approvals of one gate can arrive together: the first passes it, the second is refused."""
    by = [a.by for a in state.status.approvals if a.step == step]
    return f"step {step} was already approved" + (f" by {by[-1]}" if by else "") + "; it is moving on"


def apply_approve(state: RolloutState, request: ApproveInput, via: Via, now: datetime) -> Applied:
    waiting = state.status.waiting_for
    assert waiting is not None
    step = waiting.step
    timed_out = state.paused_for("ApprovalTimedOut")
    policy = state.count_approval(
        ApprovalRecord(by=request.by, step=step, at=now, comment=request.comment, via=via)
    )
    detail: dict[str, Any] = {"via": via, "comment": request.comment}
    if policy.required > 1:
        detail.update(approvals=len(waiting.approved_by), required=policy.required)
    answer = progress_answer(step, request.by, policy, state.approvals_at(step))
    ended_hold = timed_out and not state.paused_for("ApprovalTimedOut")  # the gate passed
    return Applied("approved", step, request.by, answer, detail, hold_changed=ended_hold)


def check_abort(state: RolloutState, request: AbortInput) -> str | None:
    return f"the rollout is already {state.status.phase}" if state.finishing() else None


def apply_abort(state: RolloutState, request: AbortInput, via: Via, now: datetime) -> Applied:
    state.abort = request
    return Applied(
        "abortRequested",
        state.status.current_step,
        request.by,
        f"abort requested by {request.by}: rolling back to 100% stable",
        {"via": via, "reason": request.reason},
    )


def check_pause(state: RolloutState, request: PauseInput) -> str | None:
    if state.finishing():
        return f"the rollout is already {state.status.phase}"
    paused = state.status.paused
    return f"already paused by {paused.by}" if paused is not None else None


def apply_pause(state: RolloutState, request: PauseInput, via: Via, now: datetime) -> Applied:
    state.pause("Manual", request.by, request.reason, now)
    return Applied(
        "paused",
        state.status.current_step,
        request.by,
        f"paused by {request.by}; holding at the current weights",
        {"via": via, "reason": request.reason},
        hold_changed=True,
    )


def _end_holds(state: RolloutState) -> None:
    """What resume and promote share: every hold ends; analysis tolerates no-data again."""
    cleared = state.clear_pauses()
    if any(c.reason == "InconclusiveAnalysis" for c in cleared):
        state.analysis_state = resume_after_inconclusive(state.analysis_state)


def check_resume(state: RolloutState, request: ResumeInput) -> str | None:
    waiting = state.status.waiting_for
    if state.status.paused is None and not (waiting and waiting.kind == "resume"):
        return f"the rollout is not paused (phase {state.status.phase})"
    return None


def apply_resume(state: RolloutState, request: ResumeInput, via: Via, now: datetime) -> Applied:
    _end_holds(state)
    waiting = state.status.waiting_for
    if waiting is not None and waiting.kind == "resume" and state.releases_waiting_step():
        state.release(waiting.step)
    return Applied(
        "resumed",
        state.status.current_step,
        request.by,
        f"resumed by {request.by}",
        {"via": via, "comment": request.comment},
        hold_changed=True,
    )


def _held_by_window(state: RolloutState) -> bool:
    waiting = state.status.waiting_for
    return waiting is not None and waiting.kind == "window"


def _check_window_promote(state: RolloutState, request: PromoteInput) -> str | None:
    """``promote`` at a deployment window wait, or asking to override one."""
    if not _held_by_window(state):
        return "nothing to override: no deployment window holds the rollout"
    if request.full and state.full_promotion is not None:
        return f"already fully promoted by {state.full_promotion.by}"
    if request.ignore_window and state.window_released:
        return "the deployment window was already overridden; the rollout is moving on"
    if request.ignore_window or request.full or state.status.paused is not None:
        return None  # full alone: 100% once the window opens; paused: ends the pause, not the wait
    # Moving traffic outside a change window must be asked for explicitly.
    reason = state.status.waiting_for.reason if state.status.waiting_for else ""
    return (
        f"the rollout waits for a deployment window ({reason}); "
        'to move traffic now, promote with "ignoreWindow": true'
    )


def check_promote(state: RolloutState, request: PromoteInput) -> str | None:
    if state.finishing():
        return f"the rollout is already {state.status.phase}"
    if request.ignore_window or _held_by_window(state):
        return _check_window_promote(state, request) or _promote_policy_refusal(state, request)
    if request.full:
        promoted = state.full_promotion
        if promoted is not None:
            return f"already fully promoted by {promoted.by}"
        return _promote_policy_refusal(state, request)
    waiting = state.status.waiting_for
    if waiting is None and state.status.paused is None:
        return f"nothing to skip: the rollout is not waiting (phase {state.status.phase})"
    if waiting is not None and waiting.step in state.released_steps and state.status.paused is None:
        return _already_passed(state, waiting.step)
    return _promote_policy_refusal(state, request)


def _at_open_gate(state: RolloutState) -> int | None:
    """The plan step of the approval gate a promote would count at (None: not at one)."""
    waiting = state.status.waiting_for
    if waiting is None or waiting.kind != "approval" or waiting.step in state.released_steps:
        return None
    return waiting.step if state.releases_waiting_step() else None


def _promote_policy_refusal(state: RolloutState, request: PromoteInput) -> str | None:
    """At a gate a promote is one approval, held to the gate's policy; ``full`` and
    ``ignoreWindow`` need an allowed approver anywhere (the spec's policy away from a gate)."""
    gate = _at_open_gate(state)
    if gate is not None or request.full or request.ignore_window:
        refusal = _gate_refusal(state, request.by, gate)
        if refusal is None and request.full:
            refusal = _skipped_gate_refusal(state, request.by, gate)
        return refusal
    return None


def _skipped_gate_refusal(state: RolloutState, by: str, gate: int | None) -> str | None:
    """A full promotion skips every gate still ahead: each must let ``by`` pass it alone, or the
    promotion would be a way round a four-eyes gate."""
    rules = state.approval_rules
    for view in state.status.steps:
        if view.kind != "approval" or view.state != "pending" or view.index == gate:
            continue
        policy = rules.at(view.index)
        refusal = approver_refusal(policy, by, rules.requested_by, [])
        if refusal is not None:
            return f"a full promotion would skip step {view.index}, and {refusal}"
        if policy.required > 1:
            return (
                f"a full promotion would skip step {view.index}, which needs {policy.required} "
                "distinct approvers; approve the gates instead"
            )
    return None


def apply_promote(state: RolloutState, request: PromoteInput, via: Via, now: datetime) -> Applied:
    waiting = state.status.waiting_for
    gate = _at_open_gate(state)
    releases = state.releases_waiting_step()
    _end_holds(state)
    progress = ""
    if _held_by_window(state):  # a window wait is released by ignoreWindow alone, never as a step
        state.window_released = state.window_released or request.ignore_window
    elif gate is not None:
        record = ApprovalRecord(
            by=request.by, step=gate, at=now, comment=request.comment, via=via, kind="promote"
        )
        policy = state.count_approval(record)
        if policy.required > 1:
            progress = f"; {progress_answer(gate, request.by, policy, state.approvals_at(gate))}"
    elif waiting is not None and releases:
        state.release(waiting.step)
    answer = f"promoted by {request.by}"
    if request.full:
        state.full_promotion = request
        answer += ": going straight to 100% canary"
        if gate is not None and gate not in state.released_steps:
            answer += f" once step {gate} has its approvals"
    if request.ignore_window and waiting is not None:
        return Applied(
            "windowOverridden",
            waiting.step,
            request.by,
            f"deployment window overridden by {request.by}: moving traffic now"
            + (" and straight to 100% canary" if request.full else ""),
            {"via": via, "window": waiting.reason, "full": request.full, "comment": request.comment},
            hold_changed=True,
        )
    answer += progress
    detail: dict[str, Any] = {"via": via, "full": request.full, "comment": request.comment}
    return Applied("promoted", state.status.current_step, request.by, answer, detail, hold_changed=True)


@dataclass(frozen=True)
class Message:
    """One human action: its payload model, its check and its effect."""

    model: type[BaseModel]
    check: Callable[[RolloutState, Any], str | None]
    apply: Callable[[RolloutState, Any, Via, datetime], Applied]


MESSAGES: dict[str, Message] = {
    "approve": Message(ApproveInput, check_approve, apply_approve),
    "abort": Message(AbortInput, check_abort, apply_abort),
    "pause": Message(PauseInput, check_pause, apply_pause),
    "resume": Message(ResumeInput, check_resume, apply_resume),
    "promote": Message(PromoteInput, check_promote, apply_promote),
}


def parse(
    name: str, payload: Any, model: type[Request], *, strict: bool = True
) -> tuple[Request | None, str | None]:
    """Decode a message payload ourselves, so a bad one is refused with a reason that names the
    field instead of being dropped (signal) or answered "failed decoding" (update).

    ``strict`` (the rule): a value of the wrong JSON type is refused, never coerced (``"step": "4"``
    does not approve step 4). ``strict=False`` is kept for replaying what older workers accepted.
    """
    if hasattr(payload, "model_dump"):  # a Python client sent the model itself
        payload = payload.model_dump(by_alias=True)
    if not isinstance(payload, dict):
        shown = repr(payload) if len(repr(payload)) <= 80 else f"{type(payload).__name__}"
        return None, f'{name}: payload must be a JSON object like {{"by": "alice"}}, got {shown}'
    try:
        return model.model_validate(payload, strict=strict), None
    except ValidationError as error:
        return None, f"{name}: " + "; ".join(validation_problems(error))


def unknown_signal_refusal(name: str) -> str:
    """Why a signal of a name no handler has is refused (it would otherwise vanish)."""
    shown = name if len(name) <= 60 else name[:57] + "..."
    return f"unknown signal {shown!r} (known: {', '.join(sorted(MESSAGES))})"

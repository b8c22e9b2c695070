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
    return None


def _already_passed(state: RolloutState, step: int) -> str:
    """Two approvals of one gate can arrive together: the first passes it, the second is refused."""
    by = [a.by for a in state.status.approvals if a.step == step]
    return f"step {step} was already approved" + (f" by {by[-1]}" if by else "") + "; it is moving on"


def apply_approve(state: RolloutState, request: ApproveInput, via: Via, now: datetime) -> Applied:
    waiting = state.status.waiting_for
    assert waiting is not None
    state.status.approvals.append(
        ApprovalRecord(by=request.by, step=waiting.step, at=now, comment=request.comment, via=via)
    )
    state.release(waiting.step)
    return Applied(
        "approved",
        waiting.step,
        request.by,
        f"step {waiting.step} approved by {request.by}",
        {"via": via, "comment": request.comment},
    )


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
        return _check_window_promote(state, request)
    if request.full:
        promoted = state.full_promotion
        return f"already fully promoted by {promoted.by}" if promoted is not None else None
    waiting = state.status.waiting_for
    if waiting is None and state.status.paused is None:
        return f"nothing to skip: the rollout is not waiting (phase {state.status.phase})"
    if waiting is not None and waiting.step in state.released_steps and state.status.paused is None:
        return _already_passed(state, waiting.step)
    return None


def apply_promote(state: RolloutState, request: PromoteInput, via: Via, now: datetime) -> Applied:
    waiting = state.status.waiting_for
    releases = state.releases_waiting_step()
    _end_holds(state)
    if _held_by_window(state):  # a window wait is released by ignoreWindow alone, never as a step
        state.window_released = state.window_released or request.ignore_window
    elif waiting is not None and releases:
        state.release(waiting.step)
        if waiting.kind == "approval":
            state.status.approvals.append(
                ApprovalRecord(
                    by=request.by, step=waiting.step, at=now, comment=request.comment, via=via, kind="promote"
                )
            )
    if request.full:
        state.full_promotion = request
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
    return Applied(
        "promoted",
        state.status.current_step,
        request.by,
        f"promoted by {request.by}" + (": going straight to 100% canary" if request.full else ""),
        {"via": via, "full": request.full, "comment": request.comment},
        hold_changed=True,
    )


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

"""Waits and deadlines: approval gates, bakes, pause steps and holds, as plain ``workflow.*`` calls.

A long wait is where history grows, so every wait here ends early with
:class:`ContinueAsNewRequested` when Temporal suggests a continue-as-new; the deadline it waited
for is kept in the carried state, so the next run waits for the same moment.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows._durations import format_duration
    from workflows.carried import RolloutState
    from workflows.errors import RolloutFailure
    from workflows.events import EventSink
    from workflows.patches import patched
    from workflows.spec import ApprovalStep, PauseStep
    from workflows.state import WaitingFor

__all__ = ["ContinueAsNewRequested", "Waits"]

# Runs from before this check walked on after a swallowed cancellation (see Waits.check_stop).
PLAN_STOPS_PATCH = "plan-stops-when-told"

WaitKind = Literal["approval", "resume", "bake", "route", "ready", "window"]


class ContinueAsNewRequested(Exception):
    """Raised out of a wait to end this run and carry the rollout into a fresh one."""


class Waits:
    """Everything the rollout waits for; what it waits for right now is ``status.waitingFor``."""

    def __init__(self, state: RolloutState, events: EventSink) -> None:
        self.state = state
        self.events = events
        self.stopping = False
        """Set when the rollout rolls back: the plan must not take another step."""

    def check_stop(self) -> None:
        """End the plan if it was told to stop. Cancelling the plan's task is not enough: an
        activity that completes just as its cancellation is requested resolves normally and
        swallows the cancellation, and the plan would walk on to its next gate and wait there."""
        if self.stopping and patched(PLAN_STOPS_PATCH):
            raise asyncio.CancelledError()

    def deadline(self, key: str, duration: timedelta) -> datetime:
        """When a wait that started now (or in an earlier run) ends."""
        if key not in self.state.deadlines:
            self.state.deadlines[key] = workflow.now() + duration
        return self.state.deadlines[key]

    def begin(
        self,
        kind: WaitKind,
        step: int,
        *,
        until: datetime | None = None,
        reason: str = "",
        hint: str = "",
        since: datetime | None = None,
    ) -> None:
        """Show the wait in status and publish its phase (``since``: when it began, if not now)."""
        state = self.state
        state.status.waiting_for = WaitingFor(
            kind=kind, step=step, since=since or workflow.now(), until=until, reason=reason, hint=hint
        )
        state.pause_hidden = state.legacy_phase_rules and kind != "resume" and bool(state.status.paused)
        self.events.publish()

    def _waiting(self, kind: WaitKind, step: int) -> bool:
        """Whether this wait already began (in the run that continued as new into this one)."""
        waiting = self.state.status.waiting_for
        return waiting is not None and waiting.kind == kind and waiting.step == step

    def end(self) -> None:
        self.state.status.waiting_for = None
        self.state.pause_hidden = False

    async def until(
        self, condition: Callable[[], bool], deadline: datetime | None = None, summary: str | None = None
    ) -> bool:
        """Wait for ``condition`` (True) or ``deadline`` (False); continue-as-new when suggested.
        ``summary`` names the deadline's timer in the Temporal UI (:mod:`workflows.timeline`)."""
        self.check_stop()
        timeout = None if deadline is None else max(timedelta(0), deadline - workflow.now())
        try:
            await workflow.wait_condition(
                lambda: condition() or workflow.info().is_continue_as_new_suggested(),
                timeout=timeout,
                timeout_summary=summary if timeout is not None else None,
            )
        except builtins.TimeoutError:
            return False
        if condition():
            return True
        raise ContinueAsNewRequested()

    async def hold_while_paused(self, step: int) -> None:
        """While any pause condition holds, stay between steps until ``resume``/``promote``.

        Not for the hold of a timed-out gate that a continued-as-new run re-enters: that gate
        waits for its approvals itself (shown as held), and approvals must still reach it."""
        paused = self.state.status.paused
        conditions = self.state.status.pause_conditions
        timed_out_gate = step in self.state.timed_out_gates
        if paused is None or (timed_out_gate and all(c.reason == "ApprovalTimedOut" for c in conditions)):
            return
        self.state.holding = True
        self.begin(
            "resume",
            step,
            reason=f"paused by {paused.by}" + (f": {paused.reason}" if paused.reason else ""),
            hint="resume or promote",
        )
        await self.until(lambda: self.state.status.paused is None)
        self.state.holding = False
        self.end()

    async def approval(self, step: int, approval: ApprovalStep) -> None:
        """An approval gate: released by ``approve``/``promote`` once its policy has enough
        distinct approvers. A timeout rolls back (``onTimeout: abort``) or holds the rollout for a
        person (``pause``: the gate then waits on, without a deadline, for its approvals)."""

        def released() -> bool:
            return step in self.state.released_steps

        if step not in self.state.timed_out_gates:
            timeout = approval.timeout
            until = self.deadline(f"approval:{step}", timeout) if timeout is not None else None
            self._begin_gate(step, until)
            summary = timeline.approval_gate(step, timeout) if timeout is not None else None
            if await self.until(released, until, summary):
                self._gate_released()
                return
            assert timeout is not None
            message = f"step {step}: no approval within {format_duration(timeout)}"
            detail: dict[str, Any] = {"onTimeout": approval.on_timeout, "timeout": format_duration(timeout)}
            self.events.record("approvalTimedOut", step, by="sluicegate", detail=detail)
            if approval.on_timeout == "abort":
                raise RolloutFailure("ApprovalTimedOut", message)
            self._hold_timed_out_gate(step, message)
        assert approval.timeout is not None
        reason = f"no approval within {format_duration(approval.timeout)} (onTimeout: pause)"
        self._begin_gate(step, None, reason=reason)
        await self.until(released)
        self._gate_released()

    def _begin_gate(self, step: int, until: datetime | None, reason: str = "") -> None:
        announce = not self._waiting("approval", step)  # once per gate, not again in a new run
        # A gate met again (in a new run, or held after its timeout) keeps the moment it began.
        waiting = self.state.status.waiting_for
        began = waiting.since if waiting is not None and not announce else None
        hint = "approve (or promote) this step"
        self.begin("approval", step, until=until, reason=reason, hint=hint, since=began)
        self.state.show_gate_progress(step)
        if announce:
            self.events.record("approvalRequested", step)

    def _gate_released(self) -> None:
        """The gate passed: how long it waited goes to the approval-wait metric."""
        waiting = self.state.status.waiting_for
        if waiting is not None:
            self.events.metrics.approval_released(workflow.now() - waiting.since)
        self.end()

    def _hold_timed_out_gate(self, step: int, message: str) -> None:
        """``onTimeout: pause``: hold for a person. Recorded as a ``paused`` event by
        ``sluicegate`` (what a person's pause records), so whoever watches pauses hears of it;
        the ``ApprovalTimedOut`` condition shows the phase ``Paused``."""
        self.state.timed_out_gates.append(step)
        self.state.pause("ApprovalTimedOut", "sluicegate", message, workflow.now())
        detail = {"reason": message, "pauseReason": "ApprovalTimedOut"}
        self.events.record("paused", step, by="sluicegate", detail=detail)

    async def pause_step(self, step: int, pause: PauseStep) -> None:
        """A ``pause`` step: a timed bake (``promote`` skips it) or a hold until ``resume``/``promote``."""
        if pause.duration is not None:
            until = self.deadline(f"pause:{step}", pause.duration)
            self.begin("bake", step, until=until, hint="promote to skip the bake")
            await self.until(
                lambda: step in self.state.released_steps, until, timeline.bake(step, pause.duration)
            )
        else:
            announce = not self._waiting("resume", step)
            self.begin("resume", step, reason="pause step", hint="resume or promote")
            if announce:
                self.events.record("pauseStepReached", step)
            await self.until(lambda: step in self.state.released_steps)
        self.end()

    async def bake(self, step: int, duration: timedelta) -> None:
        """Stay ``duration`` at a new weight while analysis watches (``promote`` skips it)."""
        until = self.deadline(f"bake:{step}", duration)
        self.begin("bake", step, until=until, reason="analysis bake", hint="promote to skip the bake")
        await self.until(lambda: step in self.state.released_steps, until, timeline.bake(step, duration))
        self.state.take_release(step)  # a promote of the bake must not also pass a later wait
        self.end()

    async def sleep(self, step: int, duration: timedelta, reason: str, summary: str) -> None:
        """A fixed delay shown as a bake (not skippable: e.g. before retiring the old workload)."""
        self.begin("bake", step, until=workflow.now() + duration, reason=reason)
        await workflow.sleep(duration, summary=summary)
        self.end()

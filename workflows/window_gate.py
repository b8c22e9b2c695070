"""The deployment window gate: before traffic moves forward, wait for a window with no blackout.

Asked before each increase of the canary's share (a ``setWeight`` above the current weight, the
jump of ``promote {full: true}``, ``removeOld``); never before step 0, a decrease or a rollback.
While closed the rollout shows ``waitingFor: {kind: window, until, reason}`` (phase
``WaitingForWindow``) and goes on by itself at the next opening; ``promote {ignoreWindow: true}``
releases one such wait. The wait is one of :class:`~workflows.waits.Waits`, so an abort ends it at
once, the analysis watch keeps measuring, and a long wait continues-as-new when Temporal suggests.

Where the time zone data comes from: the decision is made by the ``deployment_window`` local
activity (:mod:`activities.windows`), not in the workflow. Zone rules change (tzdata releases,
countries dropping DST), and a worker with newer tzdata replaying a run would otherwise compute
another opening and schedule another timer than the history holds; a local activity's result is
recorded in history, so a replay reads the decision instead of recomputing it. It is asked only
when the spec has ``windows`` or ``blackouts`` (keys older specs cannot have), so histories of
older runs keep their commands and no patch is needed.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows.carried import RolloutState
    from workflows.events import EventSink
    from workflows.spec import RolloutSpec
    from workflows.waits import Waits
    from workflows.windows import WindowDecision, WindowInput

__all__ = ["ASK_AGAIN_AFTER", "WindowGate"]

ASK_AGAIN_AFTER = timedelta(days=7)
"""The longest single wait: a long blackout is re-asked weekly, so a timer stays short and a
worker with corrected zone rules is heard from within a week."""
OVERRIDE_HINT = 'promote {"ignoreWindow": true} to move now (an allowed approver), or abort'


class WindowGate:
    """Holds traffic increases outside the spec's deployment windows and inside its blackouts."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, events: EventSink, waits: Waits) -> None:
        self.spec, self.state, self.events, self.waits = spec, state, events, waits
        self.enabled = bool(spec.windows or spec.blackouts)

    async def before_increase(self, step: int, change: str) -> None:
        """Return when ``change`` may happen: a window is open (and no blackout on), or a person
        overrode the wait. A pause that arrived while waiting holds first, then it asks again."""
        if not self.enabled:
            return
        shown: WindowDecision | None = None  # the wait last recorded as an event
        while True:
            decision = await self._ask(change)
            if decision.open:
                if shown is not None:
                    opened = {"change": change, "reason": decision.reason}
                    self.events.record("windowOpened", step, detail=opened)
                return
            if shown is None or (decision.until, decision.reason) != (shown.until, shown.reason):
                detail: dict[str, object] = {
                    "change": change,
                    "reason": decision.reason,
                    "until": _iso(decision),
                }
                self.events.record("heldByWindow", step, detail=detail)
                shown = decision
            if await self._wait(step, decision):
                self.state.window_released = False  # used up: the next increase asks again
                return
            await self.waits.hold_while_paused(step)

    async def _ask(self, change: str) -> WindowDecision:
        decision: WindowDecision = await workflow.execute_local_activity(
            "deployment_window",
            WindowInput(windows=self.spec.windows or [], blackouts=self.spec.blackouts, now=workflow.now()),
            result_type=WindowDecision,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=timeline.window_check(change),
        )
        return decision

    async def _wait(self, step: int, decision: WindowDecision) -> bool:
        """Wait for the opening (re-asked at least weekly); True when ``ignoreWindow`` ended it."""
        self.waits.begin("window", step, until=decision.until, reason=decision.reason, hint=OVERRIDE_HINT)
        ask_again = workflow.now() + ASK_AGAIN_AFTER
        deadline = ask_again if decision.until is None else min(ask_again, decision.until)
        summary = timeline.window_wait(step, decision.until, ask_again)
        released = await self.waits.until(lambda: self.state.window_released, deadline, summary)
        self.waits.end()
        return released


def _iso(decision: WindowDecision) -> str | None:
    return decision.until.isoformat() if decision.until is not None else None

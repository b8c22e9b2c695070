"""Canary readiness: before the canary's first traffic, wait until it can serve.

Asked once per rollout, just before the first weight above 0: the ``canary_ready`` activity looks
(a Deployment rolled out and Available, or a healthy host in Envoy's canary cluster), and the
rollout looks again every few seconds, showing what it waits for, until ``canary.readyTimeout``
(default 10 minutes) ends it with ``CanaryNotReady`` — the rollback then has nothing to undo, since
only step 0's 100% stable was ever written.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows._durations import format_duration
    from workflows.carried import RolloutState
    from workflows.errors import RolloutFailure
    from workflows.events import EventSink
    from workflows.models import Readiness, RouteInput
    from workflows.patches import patched
    from workflows.spec import RolloutSpec
    from workflows.waits import Waits

__all__ = ["DEFAULT_READY_TIMEOUT", "CanaryReadiness"]

# Rollouts from before readiness checks shift without looking (replay of runs in flight).
CANARY_READINESS_PATCH = "canary-readiness"
DEFAULT_READY_TIMEOUT = timedelta(minutes=10)
LOOK_AGAIN = timedelta(seconds=3)


class CanaryReadiness:
    """Waits, once, until the canary can serve (see the module docstring)."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, events: EventSink, waits: Waits) -> None:
        self.spec, self.state, self.events, self.waits = spec, state, events, waits

    async def wait(self, step: int, route: RouteInput) -> None:
        """Return once the canary is ready; fail with ``CanaryNotReady`` when it never is."""
        if self.state.canary_ready or not self.spec.checks_canary_readiness():
            return
        if not patched(CANARY_READINESS_PATCH):
            return
        patience = self.spec.canary.ready_timeout or DEFAULT_READY_TIMEOUT
        deadline = self.waits.deadline(f"ready:{step}", patience)
        while True:
            found: Readiness = await workflow.execute_activity(
                "canary_ready",
                route,
                result_type=Readiness,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=timeline.canary_ready(),
            )
            if found.ready:
                break
            if workflow.now() >= deadline:
                waited = format_duration(patience)
                message = f"step {step}: the canary was not ready within {waited}: {found.reason}"
                raise RolloutFailure("CanaryNotReady", message)
            self.waits.begin("ready", step, until=deadline, reason=found.reason, hint="abort to give up")
            look_again = min(deadline, workflow.now() + LOOK_AGAIN)
            await self.waits.until(lambda: False, look_again, timeline.canary_retry(LOOK_AGAIN))
            self.waits.end()
        self.state.canary_ready = True
        self.events.record("canaryReady", step, detail={"reason": found.reason})

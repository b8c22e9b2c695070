"""Rollback, the rollout's compensation: put 100% back on stable, then check what is served.

A rollback does not give up on a passing outage or a route someone made read-only: it keeps
trying for up to :data:`ROLLBACK_PATIENCE`, and status says why each round failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows.errors import RolloutFailure, failure_from
    from workflows.models import RouteState, SetWeightsInput
    from workflows.ownership import RouteOwnership
    from workflows.patches import patched
    from workflows.traffic import STABLE_ONLY, Traffic

__all__ = ["ROLLBACK_PATIENCE", "Rollback"]

# Rolling back must not give up on a passing outage: retry for up to an hour.
ROLLBACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)  # fmt: skip
# Rollbacks from this version on retry in rounds, telling status why each round failed.
ROLLBACK_RETRIES_VISIBLY_PATCH = "rollback-retries-visibly"
ROLLBACK_PATIENCE = timedelta(hours=1)
ROLLBACK_ATTEMPTS = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
)  # fmt: skip


class Rollback:
    """Restores 100% stable through the rollout's :class:`~workflows.traffic.Traffic`."""

    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    async def compensate(self, failure: RolloutFailure, ownership: RouteOwnership) -> NoReturn:
        """Restore 100% stable, give the route back, then fail the workflow with the failure's type."""
        state, events = self.traffic.state, self.traffic.events
        status = state.status
        status.waiting_for = None
        status.error_type = failure.error_type
        status.message = failure.message
        events.record(
            "rollbackStarted",
            status.current_step,
            detail={"type": failure.error_type, "reason": failure.message},
        )
        status.message = await self.restore_stable(failure)
        status.finished_at = workflow.now()
        events.record("rolloutEnded", status.current_step, detail={"phase": status.phase})
        await ownership.release()
        await events.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # The message starts with the type: `temporal workflow result` shows the message only.
        message = f"{failure.error_type}: {status.message}"
        raise ApplicationError(message, status.as_json(), type=failure.error_type, non_retryable=True)

    async def restore_stable(self, failure: RolloutFailure) -> str:
        """Rollback: 100% stable (if traffic was touched), then a check of what is served.
        Returns the message the rollout fails with."""
        if not self.traffic.state.traffic_touched:
            self.traffic.state.stage = "Failed"
            self.traffic.events.publish()
            return f"{failure.message} (no traffic had been changed)"
        self.traffic.state.stage = "RollingBack"
        self.traffic.events.publish()
        try:
            route = await self._set_stable_patiently(failure)
        except ActivityError as error:
            self.traffic.state.stage = "Failed"
            self.traffic.events.publish()
            return f"{failure.message}; rollback to 100% stable failed too: {failure_from(error).message}"
        self.traffic.state.status.weights = route.weights()
        self.traffic.state.stage = "RolledBack"
        self.traffic.events.publish()
        try:
            # Traffic is back; the check only records what is served now.
            await self.traffic.verify(self.traffic.state.status.current_step, STABLE_ONLY, rolling_back=True)
        except ActivityError as error:
            workflow.logger.warning("post-rollback verification failed", extra={"error": str(error.cause)})
        return failure.message

    async def _set_stable_patiently(self, failure: RolloutFailure) -> RouteState:
        """Set 100% stable, trying for up to :data:`ROLLBACK_PATIENCE` whatever the error (a
        read-only route may be made writable again), and saying in status why it has not yet."""
        if not patched(ROLLBACK_RETRIES_VISIBLY_PATCH):
            return await self._set_stable(ROLLBACK_RETRY, timedelta(hours=1))  # runs from before
        give_up = workflow.now() + ROLLBACK_PATIENCE
        pause = timedelta(seconds=1)
        while True:
            try:
                return await self._set_stable(ROLLBACK_ATTEMPTS, timedelta(minutes=5))
            except ActivityError as error:
                reason = failure_from(error)
                if workflow.now() + pause > give_up:
                    raise
                self.traffic.state.status.message = (
                    f"{failure.message}; rolling back to 100% stable failed ({reason.error_type}: "
                    f"{reason.message}); trying again"
                )
                detail = {"type": reason.error_type, "reason": reason.message}
                self.traffic.events.record(
                    "rollbackRetrying", self.traffic.state.status.current_step, detail=detail
                )
                await workflow.sleep(pause, summary=timeline.rollback_retry(pause))
                pause = min(pause * 2, timedelta(seconds=30))

    async def _set_stable(self, retry: RetryPolicy, patience: timedelta) -> RouteState:
        route: RouteState = await workflow.execute_activity(
            "set_weights",
            self.traffic.route_input(SetWeightsInput, weights=STABLE_ONLY),
            result_type=RouteState,
            start_to_close_timeout=timedelta(seconds=60),
            schedule_to_close_timeout=patience,
            retry_policy=retry,
            summary=timeline.ROLLBACK,
        )
        return route

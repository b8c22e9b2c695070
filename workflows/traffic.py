"""Traffic: every change the rollout makes to the route, and the check that it is served.

Shift to weights (refusing to overwrite a route changed behind the rollout's back, holding for a
person instead), verify the served split by sampling, remove the old version, retire its
workload, and restore 100% stable on rollback. Only activities and ``workflow.*`` calls here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows._durations import format_duration
    from workflows.carried import RolloutState
    from workflows.errors import RolloutFailure, cause_type, failure_from
    from workflows.events import EventSink
    from workflows.models import (
        OldWorkload,
        RemoveOldInput,
        RouteInput,
        RouteState,
        SampleInput,
        SampleResult,
        SetWeightsInput,
        Weights,
    )
    from workflows.readiness import CanaryReadiness
    from workflows.spec import RemoveOldStep, RolloutSpec
    from workflows.state import VerificationRecord
    from workflows.waits import Waits

__all__ = ["STABLE_ONLY", "Traffic"]

STABLE_ONLY = Weights(stable=100, canary=0)
ALL_CANARY = Weights(stable=0, canary=100)

ROUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)  # fmt: skip
ROUTE_HEARTBEAT = timedelta(seconds=5)
SAMPLE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)
Input = TypeVar("Input", bound=RouteInput)


class Traffic:
    """The route changes of one rollout. ``on_shifted`` hears of every weight set and verified."""

    def __init__(
        self,
        spec: RolloutSpec,
        state: RolloutState,
        events: EventSink,
        waits: Waits,
        on_shifted: Callable[[Weights], None],
    ) -> None:
        self.spec, self.state, self.events, self.waits = spec, state, events, waits
        self.on_shifted = on_shifted
        self.readiness = CanaryReadiness(spec, state, events, waits)

    def route_input(self, model: type[Input], **extra: object) -> Input:
        """The activity input naming this rollout's route and destinations."""
        spec, original = self.spec, self.state.status.original_route
        return model(
            router=spec.router, namespace=spec.namespace, service=spec.service, stable=spec.stable,
            canary=spec.canary, rollout_id=workflow.info().workflow_id,
            selected=original.selected if original else None, **extra,
        )  # fmt: skip

    async def read(self) -> RouteState:
        state: RouteState = await workflow.execute_activity(
            "read_route",
            self.route_input(RouteInput),
            result_type=RouteState,
            start_to_close_timeout=timedelta(seconds=30),
            summary=timeline.READ_ROUTE,
            retry_policy=ROUTE_RETRY,
        )
        self._note_warnings(state)
        return state

    def _note_warnings(self, route: RouteState) -> None:
        """Keep what the router warned about (a mirror to the canary) in ``status.warnings``."""
        known = self.state.status.warnings
        known.extend([w for w in dict.fromkeys(route.warnings) if w not in known])

    async def shift(self, step: int, weights: Weights) -> None:
        """Set the route to ``weights``, then verify the served split."""
        self.state.stage = "Progressing"
        self.state.status.waiting_for = None
        self.events.publish()
        if weights.canary > 0:
            await self.readiness.wait(step, self.route_input(RouteInput))
        self.state.traffic_touched = True
        route = await self._change_route(
            step,
            "set_weights",
            lambda expected: self.route_input(SetWeightsInput, weights=weights, expected=expected),
            timeline.set_weight(weights),
        )
        self.state.last_set = weights
        self.state.status.weights = route.weights()
        self.events.record("weightsSet", step, detail=weights.model_dump())
        await self.verify(step, weights)
        self.on_shifted(weights)

    async def _change_route(
        self, step: int, activity: str, route_input: Callable[[Weights | None], RouteInput], summary: str
    ) -> RouteState:
        """Run a route-changing activity that refuses to overwrite a route changed behind the
        rollout's back; on drift, hold for a person, and once resumed overwrite what they saw."""
        expected = self.state.last_set
        while True:
            try:
                state: RouteState = await workflow.execute_activity(
                    activity,
                    route_input(expected),
                    result_type=RouteState,
                    start_to_close_timeout=timedelta(seconds=60),
                    # The activity heartbeats, so an abort or cancel reaches it within seconds.
                    heartbeat_timeout=ROUTE_HEARTBEAT,
                    retry_policy=ROUTE_RETRY,
                    # Waiting for a cancelled change to finish keeps it from landing after a rollback.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=summary,
                )
                self._note_warnings(state)
                return state
            except ActivityError as error:
                if cause_type(error) != "RouteDrifted":
                    raise
                details = error.cause.details if isinstance(error.cause, ApplicationError) else ()
                found = (
                    RouteState.model_validate(details[0]) if details else RouteState(stable=None, canary=None)
                )
                await self._hold_for_drift(step, found)
                expected = None

    async def check_drift(self, step: int) -> None:
        """Before a wait: is the route still where the rollout left it? If not, hold for a person."""
        last = self.state.last_set
        if last is None:
            return
        found = await self.read()
        if found.weights() == last and not found.others:
            return
        await self._hold_for_drift(step, found)
        self.state.last_set = None
        await self.shift(step, last)  # resumed: put back what the rollout had set

    async def _hold_for_drift(self, step: int, found: RouteState) -> None:
        expected = self.state.last_set or STABLE_ONLY
        reason = (
            f"drift: the route holds {found.stable or 0}/{found.canary or 0}"
            + (f" and {found.others}" if found.others else "")
            + f", not the {expected.stable}/{expected.canary} this rollout set; "
            "resume to re-apply, or abort to roll back"
        )
        self.state.status.drift = found
        self.state.pause("Drift", "sluicegate", reason, workflow.now())
        self.events.record("driftDetected", step, detail=found.model_dump(mode="json"))
        await self.waits.hold_while_paused(step)
        self.state.status.drift = None

    async def verify(self, step: int, weights: Weights, *, rolling_back: bool = False) -> None:
        """Sample live traffic (when the spec says ``verify``) and test it is served at ``weights``."""
        verify = self.spec.verify
        if verify is None:
            return
        if not rolling_back:
            self.waits.check_stop()
            self.state.stage = "Verifying"
            self.events.publish()
        timeout = verify.request_timeout * (verify.samples / verify.concurrency + 2) + timedelta(seconds=30)
        result: SampleResult = await workflow.execute_activity(
            "sample_traffic",
            SampleInput(
                verify=verify,
                weights=weights,
                stable_value=verify.stable_value or self.spec.stable.label(),
                canary_value=verify.canary_value or self.spec.canary.label(),
            ),
            result_type=SampleResult,
            start_to_close_timeout=timeout,
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=SAMPLE_RETRY,
            summary=timeline.verify_split(weights, rolling_back=rolling_back),
        )
        self.state.status.verifications.append(
            VerificationRecord(step=step, at=workflow.now(), result=result)
        )
        self.events.metrics.verified(result.passed)
        self.events.details.show(self.state)
        if not result.passed and not rolling_back:
            raise RolloutFailure(
                "VerificationFailed",
                f"step {step}: expected {weights.stable}/{weights.canary} but sampled "
                f"{result.stable} stable / {result.canary} canary of {result.samples}: {result.reason}",
            )

    async def remove_old(self, step: int, remove_old: RemoveOldStep) -> None:
        """Send 100% to the canary alone, verify, then retire the old workload if named."""
        self.state.stage = "Progressing"
        self.state.status.waiting_for = None
        self.events.publish()
        route = await self._change_route(
            step,
            "remove_old_route",
            lambda expected: self.route_input(RemoveOldInput, remove_old=remove_old, expected=expected),
            timeline.remove_old(),
        )
        self.state.last_set = ALL_CANARY
        self.state.status.weights = route.weights()
        self.events.record("oldRemovedFromRoute", step, detail=route.model_dump(mode="json"))
        await self.verify(step, ALL_CANARY)
        if remove_old.deployment is not None:
            await self._retire_old_workload(step, remove_old)

    async def _retire_old_workload(self, step: int, remove_old: RemoveOldStep) -> None:
        """After ``delay`` (proxies stop sending to the old pods first), scale or delete them.
        Traffic is already 100% canary: a failure here is reported, never rolled back."""
        delay = f"waiting {format_duration(remove_old.delay)} before retiring {remove_old.deployment}"
        await self.waits.sleep(step, remove_old.delay, delay, timeline.retire_delay(remove_old))
        self.state.stage = "Progressing"
        self.events.publish()
        status = self.state.status
        try:
            status.old_workload = await workflow.execute_activity(
                "retire_old_workload",
                self.route_input(RemoveOldInput, remove_old=remove_old),
                result_type=OldWorkload,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=ROUTE_RETRY,
                summary=timeline.retire_old(remove_old),
            )
            self.events.record("oldWorkloadRetired", step, detail=status.old_workload.model_dump(mode="json"))
        except ActivityError as error:
            failure = failure_from(error)
            status.old_workload = OldWorkload(
                namespace=self.spec.namespace, deployment=remove_old.deployment, action=remove_old.action,
                error=failure.message, error_type=failure.error_type,
            )  # fmt: skip
            self.events.record(
                "oldWorkloadNotRetired", step, detail=status.old_workload.model_dump(mode="json")
            )
            workflow.logger.warning("old workload not retired", extra={"reason": failure.message})

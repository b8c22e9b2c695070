"""The ``Rollout`` workflow: a coordinator of timers, waits and activities. No I/O here.

Shape of a run::

    validate spec ─▶ step 0: read route, set 100/0 (+verify) ─▶ spec steps in order ─▶ Succeeded
                          │ abort / cancel / failed verification / non-retryable error
                          ▼
                     RollingBack: set 100/0 ─▶ RolledBack, workflow fails with a typed error

Human actions (approve, abort, pause, resume, promote) arrive both as signals and as updates of
the same name. Updates are validated first and answer the caller; signals go through the same
checks and a refused signal is recorded in ``status.events`` (it cannot answer anyone).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows._durations import format_duration
    from workflows.analysis import AnalysisSpec
    from workflows.errors import RolloutFailure
    from workflows.judge import apply_measurements, assess_analysis, resume_after_inconclusive
    from workflows.measurements import AnalysisState, MeasureInput, MeasureResult
    from workflows.models import (
        AbortInput,
        ApprovalRecord,
        ApproveInput,
        EventRecord,
        MessageResult,
        PauseInput,
        PromoteInput,
        RemoveOldInput,
        ResumeInput,
        RouteInput,
        RouteState,
        SampleInput,
        SampleResult,
        SetWeightsInput,
        Weights,
    )
    from workflows.spec import (
        ApprovalStep,
        PauseStep,
        RemoveOldStep,
        RolloutSpec,
        SpecError,
        validate_spec,
        validation_problems,
    )
    from workflows.state import (
        TERMINAL_PHASES,
        PauseRecord,
        RolloutCheckpoint,
        RolloutStatus,
        VerificationRecord,
        WaitingFor,
        plan_view,
    )

__all__ = ["PHASE_SEARCH_ATTRIBUTE", "SERVICE_SEARCH_ATTRIBUTE", "Rollout"]

PHASE_SEARCH_ATTRIBUTE = SearchAttributeKey.for_keyword("SluicePhase")
SERVICE_SEARCH_ATTRIBUTE = SearchAttributeKey.for_keyword("SluiceService")

_ROUTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)
# Rolling back must not give up on a passing outage: retry for up to an hour.
_ROLLBACK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=0,
)
_SAMPLE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3)

Request = TypeVar("Request", ApproveInput, AbortInput, PauseInput, ResumeInput, PromoteInput)
Via = Literal["signal", "update"]


@workflow.defn(name="Rollout", failure_exception_types=[SpecError])
class Rollout:
    """Shift traffic from stable to canary along the spec's plan; roll back on any failure."""

    @workflow.init
    def __init__(self, spec: dict[str, Any], carried: dict[str, Any] | None = None) -> None:
        info = workflow.info()
        self._spec: RolloutSpec | None = None
        self._spec_error: SpecError | None = None
        try:
            self._spec = validate_spec(spec)
        except SpecError as error:
            self._spec_error = error
        raw = spec if isinstance(spec, dict) else {}
        service = self._spec.service if self._spec else str(raw.get("service", ""))
        namespace = self._spec.namespace if self._spec else ""
        self._status = RolloutStatus(
            rollout_id=info.workflow_id,
            service=service,
            namespace=namespace,
            steps=plan_view(self._spec) if self._spec else [],
        )
        self._released_steps: set[int] = set()  # waits ended by approve/promote/resume
        self._abort_request: AbortInput | None = None
        self._full_promotion: PromoteInput | None = None
        self._traffic_touched = False
        self._last_set: Weights | None = None  # what the rollout last wrote: drift is anything else
        self._search_attributes = False  # set in run() once the namespace has said it knows them
        self._analysis_state = AnalysisState()
        self._analysis_task: asyncio.Task[None] | None = None
        self._analysis_failure: str | None = None
        self._analysis_hold = False  # the rollout is held because analysis had no data
        self._analysis_stopping = False
        self._shifted_steps: set[int] = set()  # setWeight steps whose weights are set and verified
        self._deadlines: dict[str, Any] = {}  # wait deadlines, kept across continue-as-new
        self._resuming = carried is not None
        self._analysis_started = False
        self._phase_before_pause: str | None = None  # the wait's phase while a pause shows over it
        if carried is not None and self._spec is not None:
            self._restore(RolloutCheckpoint.model_validate(carried))

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, spec: dict[str, Any], carried: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the plan; return the summary, or fail with a typed ``ApplicationError``."""
        if self._spec is None:
            assert self._spec_error is not None
            self._status.phase = "Failed"
            self._status.message = str(self._spec_error)
            self._status.error_type = "InvalidSpec"
            raise ApplicationError(
                str(self._spec_error),
                {"problems": self._spec_error.problems},
                type="InvalidSpec",
                non_retryable=True,
            )
        if self._status.started_at is None:
            self._status.started_at = workflow.now()
        self._search_attributes = await workflow.execute_local_activity(
            "search_attributes_registered",
            [PHASE_SEARCH_ATTRIBUTE.name, SERVICE_SEARCH_ATTRIBUTE.name],
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        if self._search_attributes:
            workflow.upsert_search_attributes([SERVICE_SEARCH_ATTRIBUTE.value_set(self._spec.service)])
            workflow.upsert_search_attributes([PHASE_SEARCH_ATTRIBUTE.value_set(self._status.phase)])
        if self._analysis_started and self._spec.analysis is not None:
            self._analysis_task = asyncio.create_task(self._analyse(self._spec.analysis))

        plan = asyncio.create_task(self._run_plan(self._spec))
        failure: RolloutFailure | None = None
        try:
            await workflow.wait_condition(
                lambda: plan.done() or self._abort_request is not None or self._analysis_failure is not None
            )
        except asyncio.CancelledError:
            failure = RolloutFailure("RolloutCancelled", "the rollout workflow was cancelled")
        if failure is None and self._analysis_failure is not None and not plan.done():
            failure = RolloutFailure("AnalysisFailed", self._analysis_failure)
        if failure is None and self._abort_request is not None and not plan.done():
            request = self._abort_request
            failure = RolloutFailure(
                "RolloutAborted",
                f"aborted by {request.by}" + (f": {request.reason}" if request.reason else ""),
            )
        if failure is not None:
            plan.cancel()
            # The plan's activities wait for their cancellation to complete, so no weight change
            # can land after the rollback below.
            await workflow.wait([plan])
        else:
            error = plan.exception()
            if isinstance(error, _ContinueAsNew):
                await self._continue_as_new(spec)
            if isinstance(error, RolloutFailure):
                failure = error
            elif error is not None:
                raise error  # a bug: fail the workflow task so a fixed worker can resume it
        await self._stop_analysis()
        if failure is not None:
            await self._roll_back(failure)

        self._set_phase("Succeeded")
        self._status.waiting_for = None
        self._status.finished_at = workflow.now()
        weights = self._status.weights or Weights(stable=100, canary=0)
        self._status.message = f"rollout complete at {weights.stable}% stable / {weights.canary}% canary"
        if self._status.old_workload and "error" in self._status.old_workload:
            self._status.message += (
                f"; the old workload was NOT retired: {self._status.old_workload['error']}"
            )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status.as_json()

    async def _run_plan(self, spec: RolloutSpec) -> None:
        try:
            resume_at = self._status.current_step if self._resuming else None
            if resume_at is None:
                await self._initialize(spec)
            for index, step in enumerate(spec.steps, start=1):
                if resume_at is not None and index < resume_at:
                    continue  # done in an earlier run
                if self._full_promotion is not None and step.remove_old is None:
                    self._mark(index, "skipped")
                    continue
                await self._hold_while_paused(index)
                self._status.current_step = index
                self._mark(index, "running")
                if step.set_weight is not None:
                    if index not in self._shifted_steps:
                        await self._shift(
                            index, Weights(stable=100 - step.set_weight, canary=step.set_weight)
                        )
                        self._shifted_steps.add(index)
                    await self._bake_after_shift(index)
                elif step.approval is not None:
                    await self._await_approval(index, step.approval)
                elif step.pause is not None:
                    await self._pause_step(index, step.pause)
                elif step.remove_old is not None:
                    await self._remove_old(index, step.remove_old)
                self._mark(index, "done")
                if self._full_promotion is not None and self._canary_weight() != 100:
                    await self._shift(index, Weights(stable=0, canary=100))
            if self._full_promotion is not None and self._canary_weight() != 100:
                await self._shift(self._status.current_step, Weights(stable=0, canary=100))
        except ActivityError as error:
            raise _failure_from(error) from None

    # ------------------------------------------------------------------ steps

    async def _initialize(self, spec: RolloutSpec) -> None:
        self._mark(0, "running")
        original = await workflow.execute_activity(
            "read_route",
            self._route_input(RouteInput),
            result_type=RouteState,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_ROUTE_RETRY,
        )
        self._status.original_route = original
        self._record("routeRead", 0, detail=original.model_dump(mode="json"))
        await self._shift(0, Weights(stable=100, canary=0))
        self._mark(0, "done")

    async def _shift(self, index: int, weights: Weights) -> None:
        self._set_phase("Progressing")
        self._status.waiting_for = None
        self._traffic_touched = True
        state = await self._change_route(
            index,
            "set_weights",
            lambda expected: self._route_input(SetWeightsInput, weights=weights, expected=expected),
        )
        self._last_set = weights
        self._status.weights = state.weights()
        self._record("weightsSet", index, detail=weights.model_dump())
        workflow.logger.info(
            "weights set", extra={"step": index, "stable": weights.stable, "canary": weights.canary}
        )
        await self._verify(index, weights)
        analysis = self._spec.analysis if self._spec else None
        if analysis is not None and weights.canary > 0 and self._analysis_task is None:
            self._analysis_started = True
            self._analysis_task = asyncio.create_task(self._analyse(analysis))

    async def _bake_after_shift(self, index: int) -> None:
        """Stay at least ``analysis.bake`` at a new weight while analysis watches (promote skips it)."""
        analysis = self._spec.analysis if self._spec else None
        if analysis is None or analysis.bake <= timedelta(0):
            return
        until = self._deadline(f"bake:{index}", analysis.bake)
        self._wait("bake", index, until=until, reason="analysis bake", hint="promote to skip the bake")
        self._set_phase("Baking")
        await self._wait_until(lambda: index in self._released_steps, until)
        self._released_steps.discard(index)  # a promote of the bake must not also pass a later wait
        self._status.waiting_for = None

    # ------------------------------------------------------------------ waiting, continue-as-new

    def _deadline(self, key: str, duration: timedelta) -> Any:
        """When a wait that started now (or in an earlier run) ends."""
        if key not in self._deadlines:
            self._deadlines[key] = workflow.now() + duration
        return self._deadlines[key]

    async def _wait_until(self, condition: Callable[[], bool], until: Any = None) -> bool:
        """Wait for ``condition`` (True) or ``until`` (False). A long wait is where history grows,
        so this is where the rollout continues-as-new when Temporal suggests it."""
        timeout = None if until is None else max(timedelta(0), until - workflow.now())
        try:
            await workflow.wait_condition(
                lambda: condition() or workflow.info().is_continue_as_new_suggested(), timeout=timeout
            )
        except builtins.TimeoutError:
            return False
        if condition():
            return True
        raise _ContinueAsNew()

    async def _continue_as_new(self, spec: dict[str, Any]) -> None:
        await self._stop_analysis()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._status.runs += 1
        checkpoint = RolloutCheckpoint(
            status=self._status,
            released_steps=sorted(self._released_steps),
            shifted_steps=sorted(self._shifted_steps),
            deadlines=self._deadlines,
            last_set=self._last_set,
            traffic_touched=self._traffic_touched,
            full_promotion=self._full_promotion.model_dump() if self._full_promotion else None,
            analysis_state=self._analysis_state,
            analysis_started=self._analysis_started,
            analysis_hold=self._analysis_hold,
            phase_before_pause=self._phase_before_pause,
        )
        workflow.logger.info(
            "continuing as new", extra={"step": self._status.current_step, "runs": self._status.runs}
        )
        workflow.continue_as_new(args=[spec, checkpoint.model_dump(mode="json")])

    def _restore(self, checkpoint: RolloutCheckpoint) -> None:
        self._status = checkpoint.status
        self._status.rollout_id = workflow.info().workflow_id
        self._released_steps = set(checkpoint.released_steps)
        self._shifted_steps = set(checkpoint.shifted_steps)
        self._deadlines = dict(checkpoint.deadlines)
        self._last_set = checkpoint.last_set
        self._traffic_touched = checkpoint.traffic_touched
        self._full_promotion = (
            PromoteInput.model_validate(checkpoint.full_promotion) if checkpoint.full_promotion else None
        )
        self._analysis_state = checkpoint.analysis_state
        self._analysis_started = checkpoint.analysis_started
        self._analysis_hold = checkpoint.analysis_hold
        self._phase_before_pause = checkpoint.phase_before_pause

    async def _analyse(self, analysis: AnalysisSpec) -> None:
        """Measure every metric each interval until the rollout ends; flag failure or no data."""
        assert self._spec is not None
        while not self._analysis_stopping:
            try:
                result = await workflow.execute_activity(
                    "measure_metrics",
                    MeasureInput(
                        metrics=analysis.metrics,
                        stable=self._spec.stable.host,
                        canary=self._spec.canary.host,
                        envoy_snapshots=self._analysis_state.envoy_snapshots,
                    ),
                    result_type=MeasureResult,
                    start_to_close_timeout=analysis.interval + timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
            except ActivityError as error:
                if self._analysis_stopping or is_cancelled_exception(error):
                    return  # the rollout ended: the cancelled measurement must not keep the loop alive
                # Provider errors come back as Error measurements; this is the activity itself
                # failing (a worker bug, a lost worker): note it and measure again next interval.
                workflow.logger.warning("measure_metrics failed", extra={"error": str(error.cause)})
            else:
                self._analysis_state = apply_measurements(analysis, self._analysis_state, result)
                self._status.analysis = [
                    metric.model_dump(mode="json", by_alias=True)
                    for metric in self._analysis_state.metrics.values()
                ]
                outcome = assess_analysis(analysis, self._analysis_state)
                if outcome.phase == "Failed":
                    self._analysis_failure = outcome.message
                    return
                if (
                    outcome.phase == "Inconclusive"
                    and not self._analysis_hold
                    and self._status.paused is None
                ):
                    self._analysis_hold = True
                    self._status.paused = PauseRecord(
                        by="analysis", reason=outcome.message, at=workflow.now()
                    )
                    self._show_pause()
                    self._record(
                        "analysisInconclusive",
                        self._status.current_step,
                        by="analysis",
                        detail={"reason": outcome.message},
                    )
            await workflow.sleep(analysis.interval)

    async def _stop_analysis(self) -> None:
        self._analysis_stopping = True
        if self._analysis_task is not None and not self._analysis_task.done():
            self._analysis_task.cancel()
            await workflow.wait([self._analysis_task])

    async def _change_route(
        self, index: int, activity: str, route_input: Callable[[Weights | None], Any]
    ) -> RouteState:
        """Run a route-changing activity that refuses to overwrite a route changed behind the
        rollout's back; on drift, hold for a person, and once resumed overwrite what they saw."""
        expected = self._last_set
        while True:
            try:
                state: RouteState = await workflow.execute_activity(
                    activity,
                    route_input(expected),
                    result_type=RouteState,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=_ROUTE_RETRY,
                    # Waiting for a cancelled change to finish keeps it from landing after a rollback.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
                return state
            except ActivityError as error:
                if _cause_type(error) != "RouteDrifted":
                    raise
                await self._hold_for_drift(index, error)
                expected = None

    async def _check_drift(self, index: int) -> None:
        """Before a wait: is the route still where the rollout left it? If not, hold for a person."""
        if self._last_set is None:
            return
        state = await workflow.execute_activity(
            "read_route",
            self._route_input(RouteInput),
            result_type=RouteState,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_ROUTE_RETRY,
        )
        observed = state.weights()
        if observed == self._last_set and not state.others:
            return
        await self._hold_for_drift(index, state)
        last, self._last_set = self._last_set, None
        await self._shift(index, last)  # resumed: put back what the rollout had set

    async def _hold_for_drift(self, index: int, found: ActivityError | RouteState) -> None:
        if isinstance(found, RouteState):
            observed = found
        else:
            details = found.cause.details if isinstance(found.cause, ApplicationError) else ()
            observed = (
                RouteState.model_validate(details[0]) if details else RouteState(stable=None, canary=None)
            )
        expected = self._last_set or Weights(stable=100, canary=0)
        reason = (
            f"drift: the route holds {observed.stable or 0}/{observed.canary or 0}"
            + (f" and {observed.others}" if observed.others else "")
            + f", not the {expected.stable}/{expected.canary} this rollout set; "
            "resume to re-apply, or abort to roll back"
        )
        self._status.drift = observed
        self._status.paused = PauseRecord(by="sluicegate", reason=reason, at=workflow.now())
        self._record("driftDetected", index, detail=observed.model_dump(mode="json"))
        workflow.logger.warning("route drift: holding", extra={"step": index, "reason": reason})
        await self._hold_while_paused(index)
        self._status.drift = None

    async def _verify(
        self, index: int, weights: Weights, *, rolling_back: bool = False
    ) -> SampleResult | None:
        assert self._spec is not None
        verify = self._spec.verify
        if verify is None:
            return None
        if not rolling_back:
            self._set_phase("Verifying")
        timeout = verify.request_timeout * (verify.samples / verify.concurrency + 2) + timedelta(seconds=30)
        result: SampleResult = await workflow.execute_activity(
            "sample_traffic",
            SampleInput(
                verify=verify,
                weights=weights,
                stable_value=verify.stable_value or self._spec.stable.label(),
                canary_value=verify.canary_value or self._spec.canary.label(),
            ),
            result_type=SampleResult,
            start_to_close_timeout=timeout,
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=_SAMPLE_RETRY,
        )
        self._status.verifications.append(VerificationRecord(step=index, at=workflow.now(), result=result))
        if not result.passed and not rolling_back:
            raise RolloutFailure(
                "VerificationFailed",
                f"step {index}: expected {weights.stable}/{weights.canary} but sampled "
                f"{result.stable} stable / {result.canary} canary of {result.samples}: {result.reason}",
            )
        return result

    async def _await_approval(self, index: int, approval: ApprovalStep) -> None:
        await self._check_drift(index)
        until = (
            self._deadline(f"approval:{index}", approval.timeout) if approval.timeout is not None else None
        )
        self._wait("approval", index, until=until, hint="approve (or promote) this step")
        self._set_phase("WaitingForApproval")
        if not await self._wait_until(lambda: index in self._released_steps, until):
            assert approval.timeout is not None
            raise RolloutFailure(
                "ApprovalTimedOut",
                f"step {index}: no approval within {format_duration(approval.timeout)}",
            )
        self._status.waiting_for = None

    async def _pause_step(self, index: int, pause: PauseStep) -> None:
        await self._check_drift(index)
        if pause.duration is not None:
            until = self._deadline(f"pause:{index}", pause.duration)
            self._wait("bake", index, until=until, hint="promote to skip the bake")
            self._set_phase("Baking")
            await self._wait_until(lambda: index in self._released_steps, until)
        else:
            self._wait("resume", index, reason="pause step", hint="resume or promote")
            self._set_phase("Paused")
            await self._wait_until(lambda: index in self._released_steps)
        self._status.waiting_for = None

    async def _hold_while_paused(self, index: int) -> None:
        """A manual ``pause`` holds the rollout between steps until ``resume``/``promote``."""
        if self._status.paused is None:
            return
        paused = self._status.paused
        self._wait(
            "resume",
            index,
            reason=f"paused by {paused.by}" + (f": {paused.reason}" if paused.reason else ""),
            hint="resume or promote",
        )
        self._set_phase("Paused")
        await self._wait_until(lambda: self._status.paused is None)
        self._status.waiting_for = None

    async def _remove_old(self, index: int, remove_old: RemoveOldStep) -> None:
        self._set_phase("Progressing")
        state = await self._change_route(
            index,
            "remove_old_route",
            lambda expected: self._route_input(RemoveOldInput, remove_old=remove_old, expected=expected),
        )
        self._last_set = Weights(stable=0, canary=100)
        self._status.weights = state.weights()
        self._record("oldRemovedFromRoute", index, detail=state.model_dump(mode="json"))
        await self._verify(index, Weights(stable=0, canary=100))
        if remove_old.deployment is not None:
            await self._retire_old_workload(index, remove_old)

    async def _retire_old_workload(self, index: int, remove_old: RemoveOldStep) -> None:
        """After ``delay`` (proxies stop sending to the old pods first), scale or delete them.

        Traffic is already 100% canary: a failure here is reported, never rolled back.
        """
        self._wait(
            "bake",
            index,
            until=workflow.now() + remove_old.delay,
            reason=f"waiting {format_duration(remove_old.delay)} before retiring {remove_old.deployment}",
        )
        self._set_phase("Baking")
        await workflow.sleep(remove_old.delay)
        self._status.waiting_for = None
        self._set_phase("Progressing")
        try:
            retired = await workflow.execute_activity(
                "retire_old_workload",
                self._route_input(RemoveOldInput, remove_old=remove_old),
                result_type=dict,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_ROUTE_RETRY,
            )
            self._status.old_workload = retired
            self._record("oldWorkloadRetired", index, detail=retired)
        except ActivityError as error:
            failure = _failure_from(error)
            self._status.old_workload = {
                "deployment": remove_old.deployment,
                "action": remove_old.action,
                "error": failure.message,
                "errorType": failure.error_type,
            }
            self._record("oldWorkloadNotRetired", index, detail=self._status.old_workload)
            workflow.logger.warning("old workload not retired", extra={"reason": failure.message})

    # ------------------------------------------------------------------ rollback

    async def _roll_back(self, failure: RolloutFailure) -> None:
        """Restore 100% stable (if traffic was touched), then fail the workflow with its type."""
        self._status.waiting_for = None
        self._status.error_type = failure.error_type
        self._status.message = failure.message
        self._record(
            "rollbackStarted",
            self._status.current_step,
            detail={"type": failure.error_type, "reason": failure.message},
        )
        workflow.logger.warning("rolling back", extra={"type": failure.error_type, "reason": failure.message})
        message = failure.message
        if self._traffic_touched:
            self._set_phase("RollingBack")
            try:
                state = await workflow.execute_activity(
                    "set_weights",
                    self._route_input(SetWeightsInput, weights=Weights(stable=100, canary=0)),
                    result_type=RouteState,
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_close_timeout=timedelta(hours=1),
                    retry_policy=_ROLLBACK_RETRY,
                )
                self._status.weights = state.weights()
                self._set_phase("RolledBack")
            except ActivityError as error:
                self._set_phase("Failed")
                message = (
                    f"{failure.message}; rollback to 100% stable failed too: {_failure_from(error).message}"
                )
            else:
                try:
                    # Traffic is back; the check only records what is served now.
                    await self._verify(
                        self._status.current_step, Weights(stable=100, canary=0), rolling_back=True
                    )
                except ActivityError as error:
                    workflow.logger.warning(
                        "post-rollback verification failed", extra={"error": str(error.cause)}
                    )
        else:
            self._set_phase("Failed")
            message = f"{failure.message} (no traffic had been changed)"
        self._status.message = message
        self._status.finished_at = workflow.now()
        self._record("rolloutEnded", self._status.current_step, detail={"phase": self._status.phase})
        await workflow.wait_condition(workflow.all_handlers_finished)
        raise ApplicationError(message, self._status.as_json(), type=failure.error_type, non_retryable=True)

    # ------------------------------------------------------------------ messages: checks

    def _check_approve(self, request: ApproveInput) -> str | None:
        waiting = self._status.waiting_for
        if waiting is None or waiting.kind != "approval":
            return (
                "nothing is waiting for approval "
                f"(phase {self._status.phase}, step {self._status.current_step})"
            )
        if request.step is not None and request.step != waiting.step:
            return f"the rollout waits for approval at step {waiting.step}, not step {request.step}"
        return None

    def _check_abort(self, request: AbortInput) -> str | None:
        if self._finishing():
            return f"the rollout is already {self._status.phase}"
        return None

    def _check_pause(self, request: PauseInput) -> str | None:
        if self._finishing():
            return f"the rollout is already {self._status.phase}"
        if self._status.paused is not None:
            return f"already paused by {self._status.paused.by}"
        return None

    def _check_resume(self, request: ResumeInput) -> str | None:
        waiting = self._status.waiting_for
        if self._status.paused is None and not (waiting and waiting.kind == "resume"):
            return f"the rollout is not paused (phase {self._status.phase})"
        return None

    def _check_promote(self, request: PromoteInput) -> str | None:
        if self._finishing():
            return f"the rollout is already {self._status.phase}"
        if request.full:
            if self._full_promotion is not None:
                return f"already fully promoted by {self._full_promotion.by}"
            return None
        if self._status.waiting_for is None and self._status.paused is None:
            return f"nothing to skip: the rollout is not waiting (phase {self._status.phase})"
        return None

    # ------------------------------------------------------------------ messages: effects

    def _apply_approve(self, request: ApproveInput, via: Via) -> MessageResult:
        waiting = self._status.waiting_for
        assert waiting is not None
        self._status.approvals.append(
            ApprovalRecord(
                by=request.by, step=waiting.step, at=workflow.now(), comment=request.comment, via=via
            )
        )
        self._released_steps.add(waiting.step)
        self._record("approved", waiting.step, by=request.by, detail={"via": via, "comment": request.comment})
        return self._answer(f"step {waiting.step} approved by {request.by}")

    def _apply_abort(self, request: AbortInput, via: Via) -> MessageResult:
        self._abort_request = request
        self._record(
            "abortRequested",
            self._status.current_step,
            by=request.by,
            detail={"via": via, "reason": request.reason},
        )
        return self._answer(f"abort requested by {request.by}: rolling back to 100% stable")

    def _apply_pause(self, request: PauseInput, via: Via) -> MessageResult:
        self._status.paused = PauseRecord(by=request.by, reason=request.reason, at=workflow.now())
        self._show_pause()
        self._record(
            "paused", self._status.current_step, by=request.by, detail={"via": via, "reason": request.reason}
        )
        return self._answer(f"paused by {request.by}; holding at the current weights")

    def _apply_resume(self, request: ResumeInput, via: Via) -> MessageResult:
        self._status.paused = None
        self._end_pause_display()
        if self._analysis_hold:
            self._analysis_hold = False
            self._analysis_state = resume_after_inconclusive(self._analysis_state)
        waiting = self._status.waiting_for
        if waiting is not None and waiting.kind == "resume":
            self._released_steps.add(waiting.step)
        self._record(
            "resumed",
            self._status.current_step,
            by=request.by,
            detail={"via": via, "comment": request.comment},
        )
        return self._answer(f"resumed by {request.by}")

    def _apply_promote(self, request: PromoteInput, via: Via) -> MessageResult:
        waiting = self._status.waiting_for
        self._status.paused = None
        self._end_pause_display()
        if self._analysis_hold:
            self._analysis_hold = False
            self._analysis_state = resume_after_inconclusive(self._analysis_state)
        if waiting is not None:
            self._released_steps.add(waiting.step)
            if waiting.kind == "approval":
                self._status.approvals.append(
                    ApprovalRecord(
                        by=request.by,
                        step=waiting.step,
                        at=workflow.now(),
                        comment=request.comment,
                        via=via,
                        kind="promote",
                    )
                )
        if request.full:
            self._full_promotion = request
        self._record(
            "promoted",
            self._status.current_step,
            by=request.by,
            detail={"via": via, "full": request.full, "comment": request.comment},
        )
        return self._answer(
            f"promoted by {request.by}" + (": going straight to 100% canary" if request.full else "")
        )

    def _handle_signal(
        self,
        name: str,
        payload: Any,
        model: type[Request],
        check: Callable[[Request], str | None],
        apply: Callable[[Request, Via], MessageResult],
    ) -> None:
        request, refusal = _parse(name, payload, model)
        if request is not None:
            refusal = check(request)
        if refusal is not None:
            by = str(payload.get("by", "")) if isinstance(payload, dict) else ""
            self._record(
                "signalRefused", self._status.current_step, by=by, detail={"signal": name, "reason": refusal}
            )
            workflow.logger.warning("signal refused", extra={"signal": name, "reason": refusal, "by": by})
            return
        assert request is not None
        apply(request, "signal")

    def _validate(
        self, name: str, payload: Any, model: type[Request], check: Callable[[Request], str | None]
    ) -> None:
        """Update validator: refuse (the caller gets the reason) without touching history."""
        request, refusal = _parse(name, payload, model)
        if request is not None:
            refusal = check(request)
        if refusal is not None:
            raise ValueError(refusal)

    # ------------------------------------------------------------------ signals

    @workflow.signal(name="approve")
    def approve_signal(self, payload: Any) -> None:
        """Pass the approval gate (fire-and-forget; prefer the update, which answers)."""
        self._handle_signal("approve", payload, ApproveInput, self._check_approve, self._apply_approve)

    @workflow.signal(name="abort")
    def abort_signal(self, payload: Any) -> None:
        """Roll back to 100% stable now."""
        self._handle_signal("abort", payload, AbortInput, self._check_abort, self._apply_abort)

    @workflow.signal(name="pause")
    def pause_signal(self, payload: Any) -> None:
        """Hold at the current weights."""
        self._handle_signal("pause", payload, PauseInput, self._check_pause, self._apply_pause)

    @workflow.signal(name="resume")
    def resume_signal(self, payload: Any) -> None:
        """Go on after a pause."""
        self._handle_signal("resume", payload, ResumeInput, self._check_resume, self._apply_resume)

    @workflow.signal(name="promote")
    def promote_signal(self, payload: Any) -> None:
        """Skip the current wait (``full``: straight to 100%)."""
        self._handle_signal("promote", payload, PromoteInput, self._check_promote, self._apply_promote)

    # ------------------------------------------------------------------ updates

    @workflow.update(name="approve")
    def approve_update(self, payload: Any) -> MessageResult:
        """Pass the approval gate; refused when nothing (or another step) waits."""
        return self._apply_approve(ApproveInput.model_validate(payload), "update")

    @approve_update.validator
    def _validate_approve(self, payload: Any) -> None:
        self._validate("approve", payload, ApproveInput, self._check_approve)

    @workflow.update(name="abort")
    def abort_update(self, payload: Any) -> MessageResult:
        """Roll back to 100% stable now."""
        return self._apply_abort(AbortInput.model_validate(payload), "update")

    @abort_update.validator
    def _validate_abort(self, payload: Any) -> None:
        self._validate("abort", payload, AbortInput, self._check_abort)

    @workflow.update(name="pause")
    def pause_update(self, payload: Any) -> MessageResult:
        """Hold at the current weights."""
        return self._apply_pause(PauseInput.model_validate(payload), "update")

    @pause_update.validator
    def _validate_pause(self, payload: Any) -> None:
        self._validate("pause", payload, PauseInput, self._check_pause)

    @workflow.update(name="resume")
    def resume_update(self, payload: Any) -> MessageResult:
        """Go on after a pause."""
        return self._apply_resume(ResumeInput.model_validate(payload), "update")

    @resume_update.validator
    def _validate_resume(self, payload: Any) -> None:
        self._validate("resume", payload, ResumeInput, self._check_resume)

    @workflow.update(name="promote")
    def promote_update(self, payload: Any) -> MessageResult:
        """Skip the current wait (``full``: straight to 100%)."""
        return self._apply_promote(PromoteInput.model_validate(payload), "update")

    @promote_update.validator
    def _validate_promote(self, payload: Any) -> None:
        self._validate("promote", payload, PromoteInput, self._check_promote)

    # ------------------------------------------------------------------ query

    @workflow.query(name="status")
    def status(self) -> dict[str, Any]:
        """Phase, current step, weights, what it waits for, approvals, checks, events."""
        return self._status.as_json()

    # ------------------------------------------------------------------ helpers

    def _route_input(self, model: type[Any], **extra: Any) -> Any:
        assert self._spec is not None
        return model(
            router=self._spec.router,
            namespace=self._spec.namespace,
            service=self._spec.service,
            stable=self._spec.stable,
            canary=self._spec.canary,
            rollout_id=workflow.info().workflow_id,
            **extra,
        )

    def _show_pause(self) -> None:
        """A pause that arrives during a gate or a bake shows at once; the wait's clock runs on
        and the hold itself takes effect before the next step."""
        waiting = self._status.waiting_for
        if waiting is not None and waiting.kind != "resume" and self._status.phase != "Paused":
            self._phase_before_pause = self._status.phase
            self._set_phase("Paused")

    def _end_pause_display(self) -> None:
        waiting = self._status.waiting_for
        if self._phase_before_pause is not None and waiting is not None and waiting.kind != "resume":
            self._set_phase(self._phase_before_pause)
        self._phase_before_pause = None

    def _set_phase(self, phase: str) -> None:
        if phase == self._status.phase and phase != "Initializing":
            return
        self._status.phase = phase
        if self._search_attributes:
            workflow.upsert_search_attributes([PHASE_SEARCH_ATTRIBUTE.value_set(phase)])

    def _wait(
        self,
        kind: Literal["approval", "resume", "bake"],
        index: int,
        *,
        until: Any = None,
        reason: str = "",
        hint: str = "",
    ) -> None:
        self._status.waiting_for = WaitingFor(
            kind=kind, step=index, since=workflow.now(), until=until, reason=reason, hint=hint
        )

    def _mark(self, index: int, state: Literal["pending", "running", "done", "skipped"]) -> None:
        view = self._status.steps[index]
        view.state = state
        if state == "running":
            view.started_at = workflow.now()
        else:
            view.finished_at = workflow.now()

    def _record(self, event: str, step: int, *, by: str = "", detail: dict[str, Any] | None = None) -> None:
        self._status.events.append(
            EventRecord(at=workflow.now(), event=event, step=step, by=by, detail=detail or {})
        )

    def _answer(self, message: str) -> MessageResult:
        return MessageResult(
            accepted=True, message=message, phase=self._status.phase, current_step=self._status.current_step
        )

    def _canary_weight(self) -> int:
        return self._status.weights.canary if self._status.weights else 0

    def _finishing(self) -> bool:
        return (
            self._status.phase in TERMINAL_PHASES
            or self._status.phase == "RollingBack"
            or self._abort_request is not None
        )


def _parse(name: str, payload: Any, model: type[Request]) -> tuple[Request | None, str | None]:
    """Decode a message payload ourselves, so a bad one is refused with a reason that names the
    field instead of being dropped (signal) or answered "failed decoding" (update)."""
    if hasattr(payload, "model_dump"):  # a Python client sent the model itself
        payload = payload.model_dump(by_alias=True)
    if not isinstance(payload, dict):
        return None, f'{name}: payload must be a JSON object like {{"by": "alice"}}, got {payload!r}'
    try:
        return model.model_validate(payload), None
    except ValidationError as error:
        return None, f"{name}: " + "; ".join(validation_problems(error))


class _ContinueAsNew(Exception):
    """Raised out of a wait to end this run and carry the rollout into a fresh one."""


def _cause_type(error: ActivityError) -> str | None:
    return error.cause.type if isinstance(error.cause, ApplicationError) else None


def _failure_from(error: ActivityError) -> RolloutFailure:
    """Name a failed activity after its cause (``RouteNotFound``, ``Forbidden``, ...)."""
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return RolloutFailure(cause.type or "ActivityFailed", cause.message)
    if isinstance(cause, TimeoutError):
        return RolloutFailure("ActivityTimedOut", f"activity {error.activity_type} timed out ({cause.type})")
    return RolloutFailure("ActivityFailed", f"activity {error.activity_type} failed: {cause or error}")

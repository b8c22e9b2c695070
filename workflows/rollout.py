"""The ``Rollout`` workflow: a thin coordinator of the plan, traffic, waits and the analysis watch.

Shape of a run::

    validate spec ─▶ step 0: read route, set 100/0 (+verify) ─▶ spec steps in order ─▶ Succeeded
                          │ abort / cancel / failed verification or analysis / non-retryable error
                          ▼
                     RollingBack: set 100/0 ─▶ RolledBack, workflow fails with a typed error

Human actions (approve, abort, pause, resume, promote) arrive both as signals and as updates of
the same name; their rules are pure functions in :mod:`workflows.messages`. Updates are validated
first and answer the caller; a refused signal is recorded in ``status.events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.arguments import decode_carried, decode_spec
    from workflows.carried import RolloutState
    from workflows.errors import RolloutFailure
    from workflows.events import PHASE_SEARCH_ATTRIBUTE, SERVICE_SEARCH_ATTRIBUTE, EventSink
    from workflows.inbox import Inbox
    from workflows.models import MessageResult
    from workflows.ownership import RouteOwnership
    from workflows.patches import patched
    from workflows.plan import Plan
    from workflows.rollback import Rollback
    from workflows.search_attributes import ALL_SEARCH_ATTRIBUTES, LISTING_ATTRIBUTES_PATCH, namespace_knows
    from workflows.spec import RolloutSpec, SpecError, validate_spec
    from workflows.traffic import Traffic
    from workflows.waits import ContinueAsNewRequested, Waits
    from workflows.watch import AnalysisWatch

__all__ = ["PHASE_SEARCH_ATTRIBUTE", "SERVICE_SEARCH_ATTRIBUTE", "WORKFLOW_TYPE", "Rollout"]

WORKFLOW_TYPE = "Rollout"

# Runs started before the phase was derived from pause conditions replay with the older rules.
DERIVED_PHASE_PATCH = "phase-derived-from-pause-conditions"
# Runs started before a resume/promote during a hold stopped releasing the next step.
HOLDS_RELEASE_NO_STEP_PATCH = "holds-release-no-step"
# Runs started before a split check that could never fail was refused at start.
SPLIT_CHECK_POWER_PATCH = "split-check-must-be-able-to-fail"


# Registered as the worker's dynamic workflow so that Temporal hands over the arguments as raw
# payloads: a named workflow's arguments are decoded before any of its code runs, and one that
# cannot be decoded fails the workflow task forever (see workflows.arguments). Start it by the name
# "Rollout" (a dynamic workflow cannot be referenced as ``Rollout.run``); other type names fail
# their workflow task, as a type the worker does not host does.
@workflow.defn(dynamic=True)
class Rollout:
    """Shift traffic from stable to canary along the spec's plan; roll back on any failure."""

    @workflow.dynamic_config
    def _config(self) -> workflow.DynamicWorkflowConfig:
        # What @workflow.defn(failure_exception_types=...) says for a named workflow.
        return workflow.DynamicWorkflowConfig(failure_exception_types=[SpecError])

    @workflow.init
    def __init__(self, args: Sequence[RawValue]) -> None:
        workflow_type = workflow.info().workflow_type
        if workflow_type != WORKFLOW_TYPE:
            # Not ours: fail the task as Temporal does for an unregistered type, so a worker that
            # hosts that workflow can still take it.
            raise RuntimeError(f"workflow type {workflow_type!r} is not registered on this worker")
        self.spec: RolloutSpec | None = None
        self.spec_error: SpecError | None = None
        spec: Any = None
        carried: RolloutState | None = None
        try:
            spec = decode_spec(args, workflow.payload_converter())
            self.spec = validate_spec(spec)
            carried = decode_carried(args, workflow.payload_converter(), self.spec)
        except SpecError as error:
            self.spec, self.spec_error = None, error
        self.resuming = carried is not None
        if carried is not None:
            self.state = carried
            self.state.status.rollout_id = workflow.info().workflow_id
        else:
            self.state = RolloutState.fresh(workflow.info().workflow_id, self.spec, spec)
        if self.spec is not None:
            self.state.approval_rules = self.spec.approval_rules()
        notify, router = (self.spec.notify, self.spec.router.kind) if self.spec is not None else (None, "")
        self.events = EventSink(self.state, notify, router=router)
        if self.spec is not None:
            self.events.details.name_versions(self.spec)
        self.inbox = Inbox(self.state, self.events)

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        """Run the plan; return the summary, or fail with a typed ``ApplicationError``."""
        try:
            return await self._run(args)
        finally:
            self.events.flush()  # a run that ends in the task of its last change upserts first

    async def _run(self, args: Sequence[RawValue]) -> dict[str, Any]:
        if self.spec is None:
            assert self.spec_error is not None
            await self._fail_invalid(self.spec_error)
        assert self.spec is not None
        if not self.resuming and patched(SPLIT_CHECK_POWER_PATCH):
            problems = self.spec.start_problems()  # a continued run keeps its start's rules
            if problems:
                await self._fail_invalid(SpecError(problems))
        spec = args[0]  # handed on unchanged (the same payload) when the rollout continues as new
        state = self.state
        state.legacy_phase_rules = not patched(DERIVED_PHASE_PATCH)
        state.legacy_hold_release = not patched(HOLDS_RELEASE_NO_STEP_PATCH)
        self.events.ask_patches()
        if state.status.started_at is None:
            state.status.started_at = workflow.now()
        watch = AnalysisWatch(self.spec, state, self.events)
        waits = Waits(state, self.events)
        traffic = Traffic(self.spec, state, self.events, waits, watch.after_shift)
        ownership = RouteOwnership(self.spec, state, self.events, waits)
        older = (PHASE_SEARCH_ATTRIBUTE, SERVICE_SEARCH_ATTRIBUTE)  # what runs before the patch set
        listed = ALL_SEARCH_ATTRIBUTES if self.events.listing else older
        self.events.search_attributes = await namespace_knows(listed)
        self.events.start(self.spec.service)
        if not self.resuming:
            started = {"stable": self.spec.stable.label(), "canary": self.spec.canary.label()}
            self.events.record("rolloutStarted", 0, detail=started)
        watch.resume()

        failure = await self._run_plan(Plan(self.spec, state, traffic, ownership), watch, waits, spec)
        await watch.stop()
        failure = failure or self.state.abort_failure()  # accepted while the analysis watch stopped
        if failure is not None:
            await Rollback(traffic).compensate(failure, ownership)
        state.stage = "Succeeded"
        self.events.publish()
        state.status.waiting_for = None
        state.status.finished_at = workflow.now()
        state.status.message = state.status.completion_message()
        self.events.record("rolloutEnded", state.status.current_step, detail={"phase": state.status.phase})
        await ownership.release()
        await self.events.drain()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state.status.as_json()

    async def _run_plan(
        self, plan: Plan, watch: AnalysisWatch, waits: Waits, spec: RawValue
    ) -> RolloutFailure | None:
        """Run the plan until it ends, an abort arrives or analysis fails; what to roll back for."""
        task = asyncio.create_task(plan.run(self.resuming))
        failure: RolloutFailure | None = None
        try:
            await workflow.wait_condition(
                lambda: task.done() or self.state.abort is not None or watch.failure is not None
            )
        except asyncio.CancelledError:
            failure = RolloutFailure("RolloutCancelled", "the rollout workflow was cancelled")
        if failure is None and watch.failure is not None and not task.done():
            failure = RolloutFailure("AnalysisFailed", watch.failure)
        if failure is None:
            # An accepted abort always rolls back, even when the plan finished in the same moment.
            failure = self.state.abort_failure()
        if failure is not None:
            waits.stopping = True
            task.cancel()
            # The plan's activities wait for their cancellation to complete, so no weight change
            # can land after the rollback.
            await workflow.wait([task])
            if not task.cancelled():
                task.exception()  # the plan's own ending (cancelled mid-activity) is superseded
            return failure
        error = task.exception()
        if isinstance(error, ContinueAsNewRequested):
            await watch.stop()
            await self.events.drain()  # a delivery cut off by the run closing would be lost
            await workflow.wait_condition(workflow.all_handlers_finished)
            self.state.status.runs += 1
            workflow.logger.info("continuing as new", extra={"step": self.state.status.current_step})
            workflow.continue_as_new(args=[spec, self.state.model_dump(mode="json")])
        if isinstance(error, RolloutFailure):
            return error
        if error is not None:
            raise error  # a bug: fail the workflow task so a fixed worker can resume it
        return None

    async def _fail_invalid(self, error: SpecError) -> NoReturn:
        status = self.state.status
        status.phase, status.message, status.error_type = "Failed", str(error), error.error_type
        self.events.metrics.spec_refused()
        await self._publish_invalid()
        self.events.details.show(self.state)
        raise ApplicationError(  # typed in the message too: `temporal workflow result` shows only that
            f"{error.error_type}: {error}",
            {"problems": error.problems},
            type=error.error_type,
            non_retryable=True,
        )

    async def _publish_invalid(self) -> None:
        """Make a rollout refused for its spec findable (``SluicePhase = "Failed"``, its service
        when the spec names one). Runs before the patch issued no command at all."""
        if not patched(LISTING_ATTRIBUTES_PATCH):
            return
        # namespace_knows answers no when the check fails: the InvalidSpec failure matters more
        self.events.search_attributes = await namespace_knows(ALL_SEARCH_ATTRIBUTES)
        self.events.listing = True
        self.events.sync()

    # -- messages: one decorated method per name and form, as Temporal needs; see workflows.inbox

    @workflow.signal(name="approve")
    def approve_signal(self, payload: Any) -> None:
        """Pass the approval gate (fire-and-forget; prefer the update, which answers)."""
        self.inbox.signal("approve", payload)

    @workflow.signal(name="abort")
    def abort_signal(self, payload: Any) -> None:
        """Roll back to 100% stable now."""
        self.inbox.signal("abort", payload)

    @workflow.signal(name="pause")
    def pause_signal(self, payload: Any) -> None:
        """Hold at the current weights."""
        self.inbox.signal("pause", payload)

    @workflow.signal(name="resume")
    def resume_signal(self, payload: Any) -> None:
        """Go on after a pause."""
        self.inbox.signal("resume", payload)

    @workflow.signal(name="promote")
    def promote_signal(self, payload: Any) -> None:
        """Skip the current wait (``full``: straight to 100%)."""
        self.inbox.signal("promote", payload)

    @workflow.signal(dynamic=True)
    def unknown_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """A signal no handler knows (a misspelt name): recorded as refused instead of vanishing."""
        self.inbox.unknown_signal(name, args)

    @workflow.update(name="approve")
    def approve_update(self, payload: Any) -> MessageResult:
        """Pass the approval gate; refused when nothing (or another step) waits."""
        return self.inbox.update("approve", payload)

    @approve_update.validator
    def _validate_approve(self, payload: Any) -> None:
        self.inbox.validate("approve", payload)

    @workflow.update(name="abort")
    def abort_update(self, payload: Any) -> MessageResult:
        """Roll back to 100% stable now."""
        return self.inbox.update("abort", payload)

    @abort_update.validator
    def _validate_abort(self, payload: Any) -> None:
        self.inbox.validate("abort", payload)

    @workflow.update(name="pause")
    def pause_update(self, payload: Any) -> MessageResult:
        """Hold at the current weights."""
        return self.inbox.update("pause", payload)

    @pause_update.validator
    def _validate_pause(self, payload: Any) -> None:
        self.inbox.validate("pause", payload)

    @workflow.update(name="resume")
    def resume_update(self, payload: Any) -> MessageResult:
        """Go on after a pause."""
        return self.inbox.update("resume", payload)

    @resume_update.validator
    def _validate_resume(self, payload: Any) -> None:
        self.inbox.validate("resume", payload)

    @workflow.update(name="promote")
    def promote_update(self, payload: Any) -> MessageResult:
        """Skip the current wait (``full``: straight to 100%)."""
        return self.inbox.update("promote", payload)

    @promote_update.validator
    def _validate_promote(self, payload: Any) -> None:
        self.inbox.validate("promote", payload)

    @workflow.query(name="status")
    def status(self) -> dict[str, Any]:
        """Phase, current step, weights, what it waits for, approvals, checks, events."""
        return self.state.status.as_json()

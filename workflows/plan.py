"""The plan: step 0 (read the route, 100% stable), then the spec's steps in order, each kind
dispatched from one table. Holds between steps while paused; a full promotion skips to 100%."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.carried import RolloutState
    from workflows.errors import failure_from
    from workflows.models import Weights
    from workflows.ownership import RouteOwnership
    from workflows.spec import RolloutSpec, Step
    from workflows.traffic import ALL_CANARY, STABLE_ONLY, Traffic
    from workflows.window_gate import WindowGate

__all__ = ["Plan"]

StepState = Literal["pending", "running", "done", "skipped"]


class Plan:
    """Runs the steps; knows what each step kind does, not how traffic or waits work."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, traffic: Traffic, ownership: RouteOwnership):
        self.spec, self.state, self.traffic, self.ownership = spec, state, traffic, ownership
        self.events, self.waits = traffic.events, traffic.waits
        self.windows = WindowGate(spec, state, self.events, self.waits)
        self.steps: dict[str, Callable[[int, Step], Awaitable[None]]] = {
            "setWeight": self._set_weight,
            "approval": self._approval,
            "pause": self._pause,
            "removeOld": self._remove_old,
        }

    async def run(self, resuming: bool) -> None:
        """Every step not done yet (``resuming``: a run continued-as-new picks up at the current step)."""
        try:
            resume_at = self.state.status.current_step if resuming else None
            if resume_at is None or self.state.status.steps[0].state != "done":
                await self._initialize()  # also a run continued-as-new while waiting for its route
            for index, step in enumerate(self.spec.steps, start=1):
                if resume_at is not None and index < resume_at:
                    continue  # done in an earlier run
                if self.state.full_promotion is not None and step.remove_old is None:
                    self._mark(index, "skipped")
                    continue
                self.waits.check_stop()
                await self.waits.hold_while_paused(index)
                self.state.status.current_step = index
                self._mark(index, "running")
                self.events.sync()  # SluiceStep follows at once (runs before the listing patch: no-op)
                await self.steps[step.kind](index, step)
                self._mark(index, "done")
                await self._finish_full_promotion(index)
            await self._finish_full_promotion(self.state.status.current_step)
        except ActivityError as error:
            raise failure_from(error) from None

    async def _initialize(self) -> None:
        self._mark(0, "running")
        await self.ownership.claim()
        original = await self.traffic.read()
        self.state.status.original_route = original
        self.events.record("routeRead", 0, detail=original.model_dump(mode="json"))
        await self.traffic.shift(0, STABLE_ONLY)
        self._mark(0, "done")

    async def _set_weight(self, index: int, step: Step) -> None:
        assert step.set_weight is not None
        if index not in self.state.shifted_steps:
            if step.set_weight > self._canary_weight():  # only moving forward waits for a window
                await self.windows.before_increase(index, f"setWeight {step.set_weight}")
            await self.traffic.shift(index, Weights(stable=100 - step.set_weight, canary=step.set_weight))
            self.state.shifted_steps.append(index)
        analysis = self.spec.analysis
        if analysis is not None and analysis.bake.total_seconds() > 0:
            await self.waits.bake(index, analysis.bake)

    async def _approval(self, index: int, step: Step) -> None:
        assert step.approval is not None
        await self.traffic.check_drift(index)
        await self.waits.approval(index, step.approval)

    async def _pause(self, index: int, step: Step) -> None:
        assert step.pause is not None
        await self.traffic.check_drift(index)
        await self.waits.pause_step(index, step.pause)

    async def _remove_old(self, index: int, step: Step) -> None:
        assert step.remove_old is not None
        await self.windows.before_increase(index, "removeOld")
        await self.traffic.remove_old(index, step.remove_old)

    async def _finish_full_promotion(self, index: int) -> None:
        """After ``promote {full: true}``: straight to 100% canary (removeOld still runs)."""
        self.waits.check_stop()
        weights = self.state.status.weights
        promotion = self.state.full_promotion
        if promotion is not None and (weights.canary if weights else 0) != 100:
            if not promotion.ignore_window:  # promote {full, ignoreWindow} overrode the window for it
                await self.windows.before_increase(index, "promote full")
            await self.traffic.shift(index, ALL_CANARY)

    def _canary_weight(self) -> int:
        """The canary's share now: what the rollout last set, else what the route last showed."""
        current = self.state.last_set or self.state.status.weights
        return current.canary if current is not None else 0

    def _mark(self, index: int, state: StepState) -> None:
        view = self.state.status.steps[index]
        view.state = state
        if state == "running":
            view.started_at = workflow.now()
        else:
            view.finished_at = workflow.now()

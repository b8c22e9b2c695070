"""The analysis watch: measure every metric each interval, in the background of the plan.

It starts at the first weight above 0 and runs through every wait until the rollout ends. A
failed metric sets :attr:`AnalysisWatch.failure` (the coordinator rolls back at once, whatever
the plan waits for); no data past ``inconclusiveLimit`` holds the rollout for a person.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows.analysis import AnalysisSpec
    from workflows.carried import RolloutState
    from workflows.events import EventSink
    from workflows.judge import apply_measurements, assess_analysis
    from workflows.measurements import MeasureInput, MeasureResult
    from workflows.models import Weights
    from workflows.spec import RolloutSpec

__all__ = ["AnalysisWatch"]


class AnalysisWatch:
    """Runs the measuring loop as a task of the workflow; ``stop`` ends it cleanly."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, events: EventSink) -> None:
        self.spec, self.state, self.events = spec, state, events
        self.failure: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def resume(self) -> None:
        """In a run continued-as-new: go on measuring if an earlier run had started."""
        if self.state.analysis_started and self.spec.analysis is not None:
            self._task = asyncio.create_task(self._measure(self.spec.analysis))

    def after_shift(self, weights: Weights) -> None:
        """Start at the first weight that sends the canary traffic."""
        if self.spec.analysis is not None and weights.canary > 0 and self._task is None:
            self.state.analysis_started = True
            self._task = asyncio.create_task(self._measure(self.spec.analysis))

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await workflow.wait([self._task])

    async def _measure(self, analysis: AnalysisSpec) -> None:
        state = self.state
        while not self._stopping:
            try:
                result = await workflow.execute_activity(
                    "measure_metrics",
                    MeasureInput(
                        metrics=analysis.metrics,
                        stable=self.spec.stable.host,
                        canary=self.spec.canary.host,
                        provider_states=state.analysis_state.provider_states,
                    ),
                    result_type=MeasureResult,
                    start_to_close_timeout=analysis.interval + timedelta(seconds=30),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                    summary=timeline.measure([metric.name for metric in analysis.metrics]),
                )
            except ActivityError as error:
                if self._stopping or is_cancelled_exception(error):
                    return  # the rollout ended: the cancelled measurement must not keep the loop alive
                # Provider errors come back as Error measurements; this is the activity itself
                # failing (a worker bug, a lost worker): note it and measure again next interval.
                workflow.logger.warning("measure_metrics failed", extra={"error": str(error.cause)})
            else:
                self.events.metrics.measured(measurement.verdict for measurement in result.measurements)
                state.analysis_state = apply_measurements(analysis, state.analysis_state, result)
                state.status.analysis = list(state.analysis_state.metrics.values())
                self.events.details.show(state)
                outcome = assess_analysis(analysis, state.analysis_state)
                if outcome.phase == "Failed":
                    self.failure = outcome.message
                    return
                if outcome.phase == "Inconclusive" and state.status.paused is None:
                    state.pause("InconclusiveAnalysis", "analysis", outcome.message, workflow.now())
                    self.events.publish_hold()
                    self.events.record(
                        "analysisInconclusive",
                        state.status.current_step,
                        by="analysis",
                        detail={"reason": outcome.message},
                    )
            await workflow.sleep(analysis.interval, summary=timeline.measure_interval(analysis.interval))

"""The rollout's one event sink: record an event, log it, publish the phase and current details.

Like Argo Rollouts' ``recorder.Eventf``, one call does everything that follows from something
having happened, so no component keeps its own audit list or touches search attributes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.carried import RolloutState, derive_phase
    from workflows.models import EventRecord
    from workflows.notifier import Notifier
    from workflows.notify_spec import NotifySink
    from workflows.patches import patched
    from workflows.rollout_metrics import RolloutMetrics
    from workflows.search_attributes import (
        LISTING_ATTRIBUTES_PATCH,
        ONE_UPSERT_PER_TASK_PATCH,
        PHASE_SEARCH_ATTRIBUTE,
        SERVICE_SEARCH_ATTRIBUTE,
        attribute_updates,
        listed_values,
    )
    from workflows.ui_details import CurrentDetails

__all__ = ["PHASE_SEARCH_ATTRIBUTE", "QUIET_EVENTS", "SERVICE_SEARCH_ATTRIBUTE", "EventSink"]

QUIET_EVENTS = frozenset({"signalRefused"})
"""Events logged at debug level: anyone who can signal can send thousands (status counts them)."""


class EventSink:
    """Appends to the bounded ``status.events``, counts per kind, logs, keeps the search
    attributes equal to the status (see :mod:`workflows.search_attributes`), keeps the Temporal
    UI's current details up to date, starts the notifications the spec's ``notify`` sinks ask for,
    and counts what the rollout's metrics count (``router``: the router kind they are labelled
    with)."""

    def __init__(self, state: RolloutState, sinks: list[NotifySink] | None = None, router: str = "") -> None:
        self.state = state
        self.metrics = RolloutMetrics(state.status.service, router)
        self.search_attributes = False
        """Set once the namespace has said it knows sluicegate's search attributes."""
        self.listing = False
        """The run took the listing patch: all five search attributes follow every change.
        Older runs publish ``SluicePhase`` and ``SluiceService`` only, as they did."""
        self.once_per_task = False
        """The run took :data:`ONE_UPSERT_PER_TASK_PATCH`: changes are upserted together when
        the workflow task's code has run (older runs upsert after every change)."""
        self._upsert_due = False
        self._upserter: asyncio.Task[None] | None = None
        self._upsert_error: Exception | None = None
        self.details = CurrentDetails(workflow.set_current_details)
        """The Temporal UI's "Current details" (:mod:`workflows.ui_details`), shown on every change."""
        self.notifier = Notifier(
            sinks or [], state, lambda event, step, by, detail: self.record(event, step, by=by, detail=detail)
        )

    def record(self, event: str, step: int, *, by: str = "", detail: dict[str, Any] | None = None) -> None:
        """Keep ``event`` in status (the newest :data:`KEEP_EVENTS`), count it, log it."""
        record = EventRecord(at=workflow.now(), event=event, step=step, by=by, detail=detail or {})
        self.state.status.add_event(record)
        # A flood of refused signals must not flood the log (or slow the workflow task down).
        level = logging.DEBUG if event in QUIET_EVENTS else logging.INFO
        workflow.logger.log(level, event, extra={"step": step, "by": by, "detail": detail or {}})
        self.details.show(self.state)
        self.notifier.recorded(record)
        self.metrics.recorded(record)
        self.sync()

    async def drain(self) -> None:
        """Before the run ends: wait for the notifications still being delivered (bounded)."""
        await self.notifier.drain()

    def start(self, service: str) -> None:
        """Publish the service and the phase the run starts with."""
        if self.listing:
            self.sync()
        elif self.search_attributes:
            workflow.upsert_search_attributes([SERVICE_SEARCH_ATTRIBUTE.value_set(service)])
            workflow.upsert_search_attributes([PHASE_SEARCH_ATTRIBUTE.value_set(self.state.status.phase)])
        self.details.show(self.state)

    def publish(self) -> None:
        """Show the phase derived from the state now (and upsert it when it changed)."""
        phase = derive_phase(self.state)
        if phase != self.state.status.phase:
            self.state.status.phase = phase
            if self.search_attributes and not self.listing:
                workflow.upsert_search_attributes([PHASE_SEARCH_ATTRIBUTE.value_set(phase)])
        self.details.show(self.state)  # what it waits for may change without the phase
        self.sync()

    def sync(self) -> None:
        """Listing runs: upsert the search attributes that no longer say what status does (one
        command, none when nothing listed changed). Called after every event and publish, which
        follow every change of phase, step, weights or wait.

        Runs that took the once-per-task patch note that an upsert is due and start a task that
        waits on a condition: Temporal checks conditions once the code woken in an activation can
        go no further, so the three or four changes a step makes together usually become one
        command (an activation whose signals or updates and other jobs run in two turns may make
        two). Each due upsert gets a fresh wait, so a cancellation requested before it cannot end
        it; the ``finally`` of the run calls :meth:`flush`, so a run that ends in the same
        activation upserts before its last command."""
        self._raise_upsert_error()
        if not (self.listing and self.search_attributes):
            return
        if not self.once_per_task:
            self._upsert_changes()
        elif not self._upsert_due:
            self._upsert_due = True
            self._upserter = asyncio.create_task(self._upsert_when_quiet())

    def ask_patches(self) -> None:
        """Which publishing rules this run follows (asked early in every run, before any local
        activity)."""
        self.listing = patched(LISTING_ATTRIBUTES_PATCH)
        self.once_per_task = patched(ONE_UPSERT_PER_TASK_PATCH)

    async def _upsert_when_quiet(self) -> None:
        await workflow.wait_condition(lambda: True)
        try:
            self.flush()
        except Exception as error:  # the SDK only logs a task's error: the run's own code
            self._upsert_error = error  # raises it, so the workflow task fails visibly

    def flush(self) -> None:
        """Upsert the changes a due :meth:`sync` left (nothing when none is due)."""
        self._raise_upsert_error()
        if self._upsert_due:
            self._upsert_due = False
            self._upsert_changes()

    def _raise_upsert_error(self) -> None:
        if self._upsert_error is not None:
            raise self._upsert_error

    def _upsert_changes(self) -> None:
        listed = listed_values(self.state.status)
        updates = attribute_updates(listed, workflow.info().typed_search_attributes)
        if updates:
            workflow.upsert_search_attributes(updates)

    def publish_hold(self) -> None:
        """Publish after a pause condition came or went: a pause shows at once over a wait. Under
        the older rules it showed only over a wait (replayed histories depend on that)."""
        if self.state.legacy_phase_rules and self.state.status.waiting_for is None:
            return
        self.publish()

"""The workflow side of notifications: start a delivery per sink, never wait for it on the way.

:class:`Notifier` is owned by the event sink: every recorded event that a sink asks for (see
:func:`workflows.notifications.notification_events`) starts one ``notify`` activity. The plan
does not await it: the delivery runs beside the rollout, retried with backoff for at most the
sink's ``deliveryTimeout``; one that gives up is recorded as ``notificationFailed`` and changes
nothing else. Before the workflow ends or continues as new, :meth:`Notifier.drain` waits for the
deliveries still out (each bounded by its timeout), so none is cut off by the run closing.

A spec without ``notify`` makes no notifier commands at all: histories of older runs replay as
they ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows.carried import RolloutState
    from workflows.errors import failure_from
    from workflows.models import EventRecord
    from workflows.notifications import (
        HOLDS,
        NotificationMessage,
        NotifyInput,
        notification_events,
        reason_for,
    )
    from workflows.notify_spec import NotifySink

__all__ = ["DELIVERY_RETRY", "Notifier"]

DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=1),
    maximum_attempts=0, non_retryable_error_types=["NotAllowed", "WebhookMisconfigured"],
)  # fmt: skip
"""Retried until the sink's ``deliveryTimeout``; a refusal by the worker's policy is final."""
ATTEMPT_TIMEOUT = timedelta(seconds=30)
"""One POST: webhooks answer in well under a second; a hung one must not use up the whole bound."""

Record = Callable[[str, int, str, dict[str, Any]], None]


class Notifier:
    """Turns recorded events into ``notify`` activities and keeps track of those still out."""

    def __init__(self, sinks: list[NotifySink], state: RolloutState, record: Record) -> None:
        self.sinks = sinks
        self.state = state
        self._record = record
        self._deliveries: set[asyncio.Task[None]] = set()
        """Deliveries still out (kept so they are neither collected nor forgotten)."""
        waiting = state.status.waiting_for
        # A run continued-as-new may start in the middle of a hold.
        self._held = bool(state.status.pause_conditions) or (waiting is not None and waiting.kind == "resume")

    def recorded(self, record: EventRecord) -> None:
        """Notify every sink that asks for what ``record`` stands for (at most once per sink)."""
        if not self.sinks:
            return
        events = notification_events(record, self._held)
        if record.event in HOLDS:
            self._held = True
        elif record.event in ("resumed", "promoted"):
            self._held = False
        if not events:
            return
        sequence = sum(self.state.status.event_counts.values())
        for index, sink in enumerate(self.sinks):
            event = next((e for e in events if e in sink.on), None)
            if event is not None:
                message = self._message(event, record, sequence)
                workflow.logger.info(
                    "notifying", extra={"sink": sink.name, "notification": event, "step": record.step}
                )
                delivery = asyncio.create_task(self._deliver(index, sink, message))
                self._deliveries.add(delivery)
                delivery.add_done_callback(self._deliveries.discard)

    def _message(self, event: str, record: EventRecord, sequence: int) -> NotificationMessage:
        info = workflow.info()
        status = self.state.status
        step = status.steps[record.step] if 0 <= record.step < len(status.steps) else None
        return NotificationMessage(
            id=f"{info.workflow_id}/{info.first_execution_run_id}/{sequence}",
            event=event,
            rollout_id=info.workflow_id,
            temporal_namespace=info.namespace,
            namespace=status.namespace,
            service=status.service,
            step=record.step,
            step_description=step.description if step is not None else "",
            weights=status.weights,
            phase=status.phase,
            reason=reason_for(event, record, status),
            by=record.by,
            at=record.at,
        )

    async def _deliver(self, index: int, sink: NotifySink, message: NotificationMessage) -> None:
        request = NotifyInput(
            sink=sink.name,
            field=f"notify[{index}]",
            format=sink.format,
            webhook=sink.webhook,
            request_timeout_seconds=min(10.0, sink.delivery_timeout.total_seconds()),
            message=message,
        )
        try:
            await workflow.execute_activity(
                "notify",
                request,
                schedule_to_close_timeout=sink.delivery_timeout,
                start_to_close_timeout=min(ATTEMPT_TIMEOUT, sink.delivery_timeout),
                retry_policy=DELIVERY_RETRY,
                summary=timeline.notify(sink.name, message.event),
            )
        except ActivityError as error:
            reason = failure_from(error)
            why = reason.message
            last = getattr(error.cause, "cause", None)  # a timeout carries the last attempt's failure
            if isinstance(error.cause, TimeoutError) and last is not None:
                why += f"; last attempt: {last}"
            detail = {"sink": sink.name, "notification": message.event, "id": message.id}
            detail |= {"type": reason.error_type, "reason": why}
            self._record("notificationFailed", message.step, "", detail)

    @property
    def idle(self) -> bool:
        return not self._deliveries

    async def drain(self) -> None:
        """Wait until every delivery still out has succeeded or given up (each is bounded by its
        sink's ``deliveryTimeout``). No-op, and no command, without sinks."""
        if self.sinks and not self.idle:
            await workflow.wait_condition(lambda: self.idle)

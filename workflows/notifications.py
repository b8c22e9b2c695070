"""What a notification says, and which recorded events become which notifications: pure rules.

The rollout records events in one place (:class:`workflows.events.EventSink`); this module maps
each recorded event to the notification events a sink may ask for (``notify[].on``):

===========================  ==============================================================
recorded event               notification event (first one the sink asks for, at most one)
===========================  ==============================================================
``rolloutStarted``           ``started`` (the first run only, not after a continue-as-new)
``approvalRequested``        ``waitingForApproval`` (an approval gate begins waiting)
``paused``                   ``paused`` (a person's ``pause``)
``pauseStepReached``         ``paused`` (a ``pause: {}`` step waits for resume/promote)
``analysisInconclusive``     ``paused`` (analysis without data holds the rollout)
``driftDetected``            ``driftDetected``, else ``paused`` (drift holds the rollout)
``resumed``                  ``resumed``
``promoted``                 ``resumed``, only when it ended a hold (else it is an approval)
``rollbackStarted``          ``analysisFailed``, only for ``type: AnalysisFailed``
``rolloutEnded``             ``succeeded`` / ``rolledBack`` / ``failed`` by its ``phase``
===========================  ==============================================================

A new kind of hold or wait joins by recording an event and adding its name here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from workflows._base import _Model
from workflows.models import EventRecord, Weights
from workflows.notify_spec import WebhookRef

if TYPE_CHECKING:
    from workflows.state import RolloutStatus

__all__ = [
    "HOLDS",
    "NOTIFIED_AS",
    "NotificationMessage",
    "NotifyInput",
    "notification_events",
    "reason_for",
]

NOTIFIED_AS: Mapping[str, tuple[str, ...]] = {
    "rolloutStarted": ("started",),
    "approvalRequested": ("waitingForApproval",),
    "paused": ("paused",),
    "pauseStepReached": ("paused",),
    "analysisInconclusive": ("paused",),
    "driftDetected": ("driftDetected", "paused"),
    "resumed": ("resumed",),
}
"""Recorded events that always notify (see the table above for the conditional ones)."""

HOLDS = frozenset({"paused", "pauseStepReached", "analysisInconclusive", "driftDetected"})
"""Recorded events after which the rollout waits for ``resume``/``promote``."""

_ENDINGS = {"Succeeded": "succeeded", "RolledBack": "rolledBack", "Failed": "failed"}


def notification_events(record: EventRecord, held: bool) -> tuple[str, ...]:
    """The notification events ``record`` stands for, most specific first (empty: none).
    ``held``: whether the rollout was holding for a person just before it."""
    if record.event in NOTIFIED_AS:
        return NOTIFIED_AS[record.event]
    if record.event == "promoted":
        return ("resumed",) if held else ()
    if record.event == "rollbackStarted" and record.detail.get("type") == "AnalysisFailed":
        return ("analysisFailed",)
    if record.event == "rolloutEnded":
        ending = _ENDINGS.get(str(record.detail.get("phase")))
        return (ending,) if ending else ()
    return ()


class NotificationMessage(_Model):
    """Everything a notification says, whatever its format (stored in history: no secrets)."""

    id: str
    """Unique per rollout event and stable across retries, so a receiver can drop duplicates:
    ``<workflow id>/<first run id>/<event sequence>``."""
    event: str
    rollout_id: str
    temporal_namespace: str
    namespace: str
    service: str
    step: int
    step_description: str = ""
    weights: Weights | None = None
    phase: str
    reason: str = ""
    by: str = ""
    at: datetime


class NotifyInput(_Model):
    """Activity ``notify``: deliver ``message`` to one sink. The webhook is named, never given:
    the activity reads the URL from the worker's environment or files."""

    sink: str
    field: str
    """Where the sink is in the spec (``notify[0]``), for refusals."""
    format: str
    webhook: WebhookRef
    request_timeout_seconds: float = 10.0
    message: NotificationMessage


def reason_for(event: str, record: EventRecord, status: RolloutStatus) -> str:
    """One line saying why this notification is sent (``status`` is the rollout's status now)."""
    detail = record.detail
    if isinstance(detail.get("reason"), str) and detail["reason"]:
        return str(detail["reason"])
    if event in ("paused", "driftDetected") and status.paused is not None:
        return str(status.paused.reason or f"paused by {status.paused.by}")
    if event == "paused" and record.event == "pauseStepReached":
        return "the plan's pause step waits for resume or promote"
    if event == "waitingForApproval":
        waiting = status.waiting_for
        until = f" until {waiting.until.isoformat()}" if waiting is not None and waiting.until else ""
        return f"step {record.step} waits for approval{until}"
    if event == "resumed":
        return f"{record.event} by {record.by}" if record.by else record.event
    if event == "started":
        return f"rolling out {detail.get('canary', 'the canary')} beside {detail.get('stable', 'stable')}"
    return str(status.message)

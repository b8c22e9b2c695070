"""What the rollout recorded about each action (``status.events``), matched to history events.

History says who sent what and when; only the rollout's own records say at which plan step it
handled a signal and whether it refused it, and which route change was a step's and which the
rollback's. This module finds those records and pairs them with the rows read from history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.pydantic import pydantic_data_converter

if TYPE_CHECKING:
    from sluice.audit import RunHistory

__all__ = [
    "MESSAGE_EVENTS",
    "TRAFFIC_EVENTS",
    "Draft",
    "first",
    "rollout_records",
    "steps_of_signals",
    "steps_of_traffic",
    "weights",
]

MESSAGE_EVENTS = {
    "approved": "approve",
    "abortRequested": "abort",
    "paused": "pause",
    "resumed": "resume",
    "promoted": "promote",
    "windowOverridden": "promote",  # a promote with ignoreWindow that released a window wait
}
"""The event the rollout records for each applied message (:mod:`workflows.messages`)."""

TRAFFIC_EVENTS = {"set_weights": "weightsSet", "remove_old_route": "oldRemovedFromRoute"}
"""Route-changing activities, and the event the rollout records once one has changed the route."""


@dataclass
class Draft:
    """A row being read: its outcome and step may come later (a completion, the rollout's records)."""

    time: datetime
    run: int
    run_id: str
    action: str
    via: str
    by: str
    identity: str
    outcome: str
    step: int | None = None
    weights: dict[str, int] | None = None
    detail: str = ""
    principal: dict[str, str] | None = None


def values(payloads: Payloads) -> list[Any]:
    """The payloads as plain JSON values (None for one that cannot be decoded)."""
    try:
        return list(pydantic_data_converter.payload_converter.from_payloads(list(payloads.payloads)))
    except Exception:  # an undecodable payload is shown as nothing, never stops the audit
        return [None] * len(payloads.payloads)


def first(payloads: Payloads) -> Any:
    """The first payload's value (a message's or an activity's one argument)."""
    decoded = values(payloads)
    return decoded[0] if decoded else None


def weights(value: Any) -> dict[str, int] | None:
    """``{"stable": .., "canary": ..}`` from a ``Weights`` value, or None."""
    if isinstance(value, dict) and {"stable", "canary"} <= value.keys():
        return {"stable": int(value["stable"] or 0), "canary": int(value["canary"] or 0)}
    return None


def rollout_records(
    runs: Sequence[RunHistory], live_status: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], int]:
    """The newest ``status.events`` the rollout left, and how many runs they cover: the running
    run's status when given, else what the newest run that ended handed on (continue-as-new input,
    result, failure details)."""
    if live_status is not None:
        return list(live_status.get("events") or []), len(runs)
    for number in range(len(runs), 0, -1):
        for event in reversed(runs[number - 1].events):
            status = _status_left_by(event)
            if status is not None:
                return list(status.get("events") or []), number
    return [], 0


def _status_left_by(event: HistoryEvent) -> dict[str, Any] | None:
    status: Any = None
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        carried = values(event.workflow_execution_continued_as_new_event_attributes.input)
        status = carried[1].get("status") if len(carried) > 1 and isinstance(carried[1], dict) else None
    elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        status = first(event.workflow_execution_completed_event_attributes.result)
    elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        failure = event.workflow_execution_failed_event_attributes.failure
        status = first(failure.application_failure_info.details)
    return status if isinstance(status, dict) and "events" in status else None


def _at(record: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(record["at"]))
    except (KeyError, ValueError):
        return None


def _align(
    drafts: list[Draft], records: list[dict[str, Any]], fits: Callable[[Draft, dict[str, Any]], bool]
) -> list[tuple[Draft, dict[str, Any]]]:
    """Pair drafts with the rollout's records of them, newest first: the records are the newest
    the rollout kept, each made after what it records (``at`` is never before the event's time).
    A draft the next record does not fit has no record (it is older than those kept)."""
    pairs = []
    remaining = list(records)
    for made in reversed(drafts):
        if not remaining:
            break
        record = remaining[-1]
        at = _at(record)
        if at is not None and at >= made.time and fits(made, record):
            pairs.append((made, remaining.pop()))
    return pairs


def _signal_record_of(record: dict[str, Any]) -> str | None:
    """The signal name a record was made for, or None when it was not made for a signal."""
    detail = record.get("detail") or {}
    if record.get("event") == "signalRefused":
        return str(detail.get("signal", ""))
    if detail.get("via") == "signal":
        return MESSAGE_EVENTS.get(str(record.get("event")))
    return None


def steps_of_signals(drafts: list[Draft], records: list[dict[str, Any]]) -> None:
    """Each signal's step and outcome, from the record the rollout made when it handled it."""
    signals = [d for d in drafts if d.via == "signal"]
    made_for_signals = [r for r in records if _signal_record_of(r) is not None]

    def fits(made: Draft, record: dict[str, Any]) -> bool:
        return (
            _signal_record_of(record) == made.action and str(record.get("by", "")).strip() == made.by.strip()
        )

    for made, record in _align(signals, made_for_signals, fits):
        made.step = record.get("step")
        if record.get("event") == "signalRefused":
            made.outcome = "refused"
            made.detail = str((record.get("detail") or {}).get("reason", ""))
        else:
            made.outcome = "applied"


def steps_of_traffic(drafts: list[Draft], records: list[dict[str, Any]]) -> None:
    """Each route change's step: the step's own change (``weightsSet``), or the rollback."""
    changes = [d for d in drafts if d.via == "activity" and d.outcome == "done"]
    step_records = [r for r in records if r.get("event") in TRAFFIC_EVENTS.values()]

    def fits(made: Draft, record: dict[str, Any]) -> bool:
        if record.get("event") != TRAFFIC_EVENTS[made.action]:
            return False
        return made.action != "set_weights" or weights(record.get("detail")) == made.weights

    for made, record in _align(changes, step_records, fits):
        made.step = record.get("step")
    rollbacks = [(r, at) for r in records if r.get("event") == "rollbackStarted" and (at := _at(r))]
    for made in changes:
        if made.step is None and made.action == "set_weights":
            started = [r for r, at in rollbacks if at <= made.time]
            if started:
                made.step, made.detail = started[-1].get("step"), "rollback"

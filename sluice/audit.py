"""Who really did what to a rollout: its human actions and traffic changes, read from history.

Pure: history events in (every run of one rollout, oldest first), :class:`AuditRow` out. The CLI
(``sluice audit``) only fetches the runs and prints.

Two names stand beside every action. ``by`` is what the sender *claimed* in the payload; the
identity is what the sending client told Temporal (``WorkflowExecutionSignaled.identity``, the
accepted update's ``meta.identity``, ``WorkflowExecutionStarted.identity``). Both are client-supplied
unless the server checks the identity against the authenticated caller (README: "Trusting the
identity"). The matching rule is :mod:`sluice.identity`.

``step`` is the plan step the rollout itself recorded for the action (the ``step`` of its own event
in ``status.events``, or the ``currentStep`` an update answered): the gate an approval passed, the
step a pause held. The rollout's records come from the status it carried into each continue-as-new,
its result, its failure details, or (for a running rollout) its ``status`` query; it keeps the newest
100 events, so an action older than those has no step (None).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from sluice._audit_records import (
    TRAFFIC_EVENTS,
    Draft,
    first,
    rollout_records,
    steps_of_signals,
    steps_of_traffic,
    weights,
)
from sluice.identity import identity_user, is_mismatch

__all__ = ["CSV_COLUMNS", "AuditRow", "RunHistory", "audit_rows", "to_csv", "to_json"]


@dataclass(frozen=True)
class RunHistory:
    """One run of the rollout's workflow: its id and its history events, in order."""

    run_id: str
    events: Sequence[HistoryEvent]


@dataclass(frozen=True)
class AuditRow:
    """One human action or traffic change."""

    time: datetime
    run: int
    """Position of the run in the rollout's chain of runs, from 1."""
    run_id: str
    step: int | None
    action: str
    """``start``, ``approve`` ... ``promote`` (or the name of an unknown signal), ``set_weights``,
    ``remove_old_route``, ``cancel``, ``terminate``."""
    via: str
    """``start``, ``signal``, ``update``, ``activity`` (a traffic change), ``request``."""
    by: str
    """Who the sender claimed to be (payload ``by``; ``requestedBy`` for the start)."""
    identity: str
    """The client identity Temporal recorded (for a traffic change: the worker that made it)."""
    identity_user: str | None
    principal: dict[str, str] | None
    """``{"type", "name"}``: the caller the *server* authenticated, on servers that record it
    (Temporal's Principal Attribution); None otherwise."""
    mismatch: bool
    """The claimed ``by`` is not the person the principal (when recorded), else the identity, names."""
    outcome: str
    weights: dict[str, int] | None = None
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        """camelCase JSON, as ``sluice audit --output json`` prints it."""
        return {
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "run": self.run,
            "runId": self.run_id,
            "step": self.step,
            "action": self.action,
            "via": self.via,
            "by": self.by,
            "identity": self.identity,
            "identityUser": self.identity_user,
            "principal": self.principal,
            "mismatch": self.mismatch,
            "outcome": self.outcome,
            "weights": self.weights,
            "detail": self.detail,
        }


# --------------------------------------------------------------------------- reading history


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


def _by(payload: Any) -> str:
    by = payload.get("by", "") if isinstance(payload, dict) else ""
    return str(by)[:100]


def _message_detail(payload: Any) -> str:
    """What else the sender asked for (``step=2; full=True; lgtm``): every field but ``by``, the
    free text last, so fields added to a message later show without a change here."""
    if not isinstance(payload, dict):
        return ""
    texts = ("reason", "comment")
    parts = [
        f"{key}={value}"
        for key, value in payload.items()
        if key != "by" and key not in texts and value not in (None, False, "")
    ]
    parts += [str(payload[key]) for key in texts if payload.get(key)]
    return "; ".join(parts)[:500]


# --------------------------------------------------------------------------- rows


def _row(made: Draft) -> AuditRow:
    # What the server authenticated outranks what the client said about itself.
    checked = made.principal["name"] if made.principal else made.identity
    return AuditRow(
        time=made.time, run=made.run, run_id=made.run_id, step=made.step, action=made.action,
        via=made.via, by=made.by, identity=made.identity, identity_user=identity_user(made.identity),
        principal=made.principal, mismatch=is_mismatch(made.by, checked), outcome=made.outcome,
        weights=made.weights, detail=made.detail,
    )  # fmt: skip


def _principal(event: HistoryEvent) -> dict[str, str] | None:
    if not event.HasField("principal") or not event.principal.name:
        return None
    return {"type": event.principal.type, "name": event.principal.name}


def audit_rows(runs: Sequence[RunHistory], live_status: dict[str, Any] | None = None) -> list[AuditRow]:
    """Every human action and traffic change in ``runs`` (one rollout's chain of runs, oldest
    first), in time order. ``live_status``: the ``status`` query's answer while the last run runs."""
    drafts: list[Draft] = []
    for number, run in enumerate(runs, start=1):
        drafts.extend(_read_run(number, run))
    records, covered = rollout_records(runs, live_status)
    known = [d for d in drafts if d.run <= covered]
    steps_of_signals(known, records)
    steps_of_traffic(known, records)
    return [_row(d) for d in sorted(drafts, key=lambda d: d.time)]


def _read_run(number: int, run: RunHistory) -> list[Draft]:
    drafts: list[Draft] = []
    updates: dict[str, Draft] = {}
    activities: dict[int, Draft] = {}

    def draft(event: HistoryEvent, action: str, via: str, by: str, identity: str, outcome: str) -> Draft:
        made = Draft(_time(event), number, run.run_id, action, via, by, identity, outcome)
        made.principal = _principal(event)
        drafts.append(made)
        return made

    for event in run.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            if not started.continued_execution_run_id:  # a continue-as-new is the rollout's own doing
                spec = first(started.input)
                requested = spec.get("requestedBy", "") if isinstance(spec, dict) else ""
                draft(event, "start", "start", str(requested or ""), started.identity, "started")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signaled = event.workflow_execution_signaled_event_attributes
            payload = first(signaled.input)
            made = draft(event, signaled.signal_name, "signal", _by(payload), signaled.identity, "delivered")
            made.detail = _message_detail(payload)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            payload = first(request.input.args)
            made = draft(event, request.input.name, "update", _by(payload), request.meta.identity, "pending")
            made.detail = _message_detail(payload)
            updates[request.meta.update_id] = made
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            completed = event.workflow_execution_update_completed_event_attributes
            _complete_update(updates.get(completed.meta.update_id), completed)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name in TRAFFIC_EVENTS:
                made = draft(event, scheduled.activity_type.name, "activity", "", "", "running")
                request = first(scheduled.input)
                made.weights = (weights(request.get("weights")) if isinstance(request, dict) else None) or (
                    {"stable": 0, "canary": 100} if made.action == "remove_old_route" else None
                )
                activities[event.event_id] = made
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            cancel = event.workflow_execution_cancel_requested_event_attributes
            draft(event, "cancel", "request", "", cancel.identity, "requested").detail = cancel.cause
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            terminated = event.workflow_execution_terminated_event_attributes
            made = draft(event, "terminate", "request", "", terminated.identity, "terminated")
            made.detail = terminated.reason
        else:
            _end_activity(event, activities)
    return drafts


def _complete_update(made: Draft | None, completed: Any) -> None:
    if made is None:
        return
    if completed.outcome.HasField("failure"):
        made.outcome = "refused"
        made.detail = completed.outcome.failure.message
        return
    made.outcome = "accepted"
    result = first(completed.outcome.success)
    if isinstance(result, dict) and isinstance(result.get("currentStep"), int):
        made.step = result["currentStep"]


def _end_activity(event: HistoryEvent, activities: dict[int, Draft]) -> None:
    """A route change's end: done (the time it landed, the worker that made it) or why not."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        done = event.activity_task_completed_event_attributes
        made = activities.get(done.scheduled_event_id)
        if made is not None:
            made.time, made.identity, made.outcome = _time(event), done.identity, "done"
            made.principal = _principal(event)
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        failed = event.activity_task_failed_event_attributes
        made = activities.get(failed.scheduled_event_id)
        if made is not None:
            made.identity, made.outcome, made.detail = failed.identity, "failed", failed.failure.message
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        made = activities.get(event.activity_task_timed_out_event_attributes.scheduled_event_id)
        if made is not None:
            made.outcome = "timed out"
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
        made = activities.get(event.activity_task_canceled_event_attributes.scheduled_event_id)
        if made is not None:
            made.outcome = "cancelled"


CSV_COLUMNS = (
    "time", "run", "runId", "step", "action", "via", "by", "identity", "identityUser", "principalType",
    "principalName", "mismatch", "outcome", "stable", "canary", "detail",
)  # fmt: skip


def to_csv(rows: Sequence[AuditRow]) -> str:
    """``sluice audit --output csv``: one header line, one line per row (weights as two columns)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        data = row.as_json()
        shift = data.pop("weights") or {}
        data.update(stable=shift.get("stable", ""), canary=shift.get("canary", ""))
        principal = data.pop("principal") or {}
        data.update(principalType=principal.get("type", ""), principalName=principal.get("name", ""))
        data["mismatch"] = "true" if row.mismatch else "false"
        writer.writerow({key: "" if value is None else value for key, value in data.items()})
    return out.getvalue()


def to_json(rollout_id: str, runs: Sequence[RunHistory], rows: Sequence[AuditRow]) -> dict[str, Any]:
    """``sluice audit --output json``: the rollout, its runs oldest first, and the rows."""
    return {
        "rolloutId": rollout_id,
        "runs": [run.run_id for run in runs],
        "rows": [row.as_json() for row in rows],
    }

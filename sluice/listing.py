"""``sluice list``: every rollout from Temporal's visibility store, one row each.

The rows come from the search attributes the Rollout keeps (see :mod:`workflows.search_attributes`)
and from what visibility knows of every execution (start time, status): one list call, no query to
each workflow, so a list of a thousand rollouts costs what a list of ten does, and it works while
no worker runs. Visibility is eventually consistent: a change shows a moment after it happened.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from workflows.rollout import WORKFLOW_TYPE
from workflows.search_attributes import (
    CANARY_WEIGHT_SEARCH_ATTRIBUTE,
    PHASE_SEARCH_ATTRIBUTE,
    SERVICE_SEARCH_ATTRIBUTE,
    STEP_SEARCH_ATTRIBUTE,
    WAITING_FOR_SEARCH_ATTRIBUTE,
)
from workflows.state import PHASES

__all__ = [
    "DEFAULT_LIMIT",
    "ListFilterError",
    "ListOutput",
    "RolloutRow",
    "format_age",
    "list_query",
    "list_rollouts",
    "render",
    "render_table",
    "rows_as_json",
]

DEFAULT_LIMIT = 50

_STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "canceled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued",
}
_COLUMNS = ("ROLLOUT", "SERVICE", "PHASE", "STEP", "CANARY", "WAITING", "AGE", "STATUS")


class ListOutput(StrEnum):
    """How ``sluice list`` prints its rows."""

    table = "table"
    json = "json"


class ListFilterError(ValueError):
    """A filter value ``sluice list`` cannot put into a visibility query; the message names it."""


@dataclass(frozen=True)
class RolloutRow:
    """One rollout as the visibility store knows it (None: the rollout never set that value)."""

    rollout_id: str
    run_id: str
    service: str | None
    phase: str | None
    step: int | None
    canary_weight: int | None
    waiting_for: str | None
    status: str
    started_at: datetime
    closed_at: datetime | None

    @classmethod
    def from_execution(cls, execution: WorkflowExecution) -> RolloutRow:
        """The row of one listed execution, from its search attributes."""
        found = execution.typed_search_attributes
        return cls(
            rollout_id=execution.id,
            run_id=execution.run_id,
            service=found.get(SERVICE_SEARCH_ATTRIBUTE),
            phase=found.get(PHASE_SEARCH_ATTRIBUTE),
            step=found.get(STEP_SEARCH_ATTRIBUTE),
            canary_weight=found.get(CANARY_WEIGHT_SEARCH_ATTRIBUTE),
            waiting_for=found.get(WAITING_FOR_SEARCH_ATTRIBUTE),
            status=_STATUS.get(execution.status, "unknown") if execution.status else "unknown",
            started_at=execution.start_time,
            closed_at=execution.close_time,
        )


def list_query(phase: str | None = None, service: str | None = None, running: bool = False) -> str:
    """The visibility query for ``sluice list``'s filters.

    Runs that continued as new are left out: the rollout's row is its newest run. ``phase`` is
    matched case-insensitively against the known phases and written as the workflow writes it.
    Raises :class:`ListFilterError` naming the option."""
    clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'", "ExecutionStatus != 'ContinuedAsNew'"]
    if phase is not None:
        known = {name.lower(): name for name in PHASES}
        if phase.lower() not in known:
            raise ListFilterError(f"--phase: unknown phase {phase!r} (one of {', '.join(PHASES)})")
        clauses.append(f"{PHASE_SEARCH_ATTRIBUTE.name} = '{known[phase.lower()]}'")
    if service is not None:
        if not service or not service.isprintable() or any(c in service for c in "'\"\\"):
            raise ListFilterError(f"--service: {service!r} is not a service name")
        clauses.append(f"{SERVICE_SEARCH_ATTRIBUTE.name} = '{service}'")
    if running:
        clauses.append("ExecutionStatus = 'Running'")
    return " AND ".join(clauses)


async def list_rollouts(
    client: Client,
    *,
    phase: str | None = None,
    service: str | None = None,
    running: bool = False,
    limit: int = DEFAULT_LIMIT,
) -> list[RolloutRow]:
    """Up to ``limit`` rollouts matching the filters, newest start first.

    The visibility store hands running executions out first, then the most recently closed; the
    ``limit`` rows it hands out are sorted by start time here (a SQL visibility store takes no
    ``ORDER BY``)."""
    if limit < 1:
        raise ListFilterError(f"--limit: must be at least 1, got {limit}")
    query = list_query(phase, service, running)
    rows = [RolloutRow.from_execution(found) async for found in client.list_workflows(query, limit=limit)]
    return sorted(rows, key=lambda row: (row.started_at, row.run_id), reverse=True)


def format_age(age: timedelta) -> str:
    """``45s``, ``12m``, ``3h12m``, ``2d4h``: two units at most, like kubectl's AGE."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours and days < 10 else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{seconds}s" if seconds and minutes < 10 else f"{minutes}m"
    return f"{seconds}s"


def _cells(row: RolloutRow, now: datetime) -> tuple[str, ...]:
    def shown(value: object) -> str:
        return "-" if value is None or value == "" else str(value)

    canary = None if row.canary_weight is None else f"{row.canary_weight}%"
    return (
        row.rollout_id,
        shown(row.service),
        shown(row.phase),
        shown(row.step),
        shown(canary),
        shown(row.waiting_for),
        format_age(now - row.started_at),
        row.status,
    )


def render_table(rows: Iterable[RolloutRow], now: datetime) -> str:
    """Aligned columns under a header, one line per rollout, never wrapped (for people and
    ``grep``/``awk`` alike); ``-`` where a rollout never set a value."""
    lines = [_COLUMNS, *(_cells(row, now) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(_COLUMNS))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def rows_as_json(rows: Iterable[RolloutRow], now: datetime) -> list[dict[str, Any]]:
    """The rows as camelCase JSON objects (times in ISO 8601, the age in whole seconds)."""
    return [
        {
            "rolloutId": row.rollout_id,
            "runId": row.run_id,
            "service": row.service,
            "phase": row.phase,
            "step": row.step,
            "canaryWeight": row.canary_weight,
            "waitingFor": row.waiting_for,
            "status": row.status,
            "startedAt": row.started_at.isoformat(),
            "closedAt": row.closed_at.isoformat() if row.closed_at is not None else None,
            "ageSeconds": max(0, int((now - row.started_at).total_seconds())),
        }
        for row in rows
    ]


def render(rows: list[RolloutRow], output: ListOutput, now: datetime | None = None) -> str:
    """What ``sluice list`` prints: the table, or a JSON array."""
    now = now or datetime.now(UTC)
    if output is ListOutput.json:
        return json.dumps(rows_as_json(rows, now), indent=2)
    return render_table(rows, now)

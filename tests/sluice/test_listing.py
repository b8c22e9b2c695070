"""``sluice list``'s rows: the visibility query its filters make, the table and the JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sluice.listing import (
    ListFilterError,
    ListOutput,
    RolloutRow,
    format_age,
    list_query,
    render,
    render_table,
    rows_as_json,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def row(rollout_id: str, started_ago: timedelta, **fields: object) -> RolloutRow:
    values: dict[str, object] = {
        "rollout_id": rollout_id,
        "run_id": f"run-{rollout_id}",
        "service": None,
        "phase": None,
        "step": None,
        "canary_weight": None,
        "waiting_for": None,
        "status": "running",
        "started_at": NOW - started_ago,
        "closed_at": None,
        **fields,
    }
    return RolloutRow(**values)  # type: ignore[arg-type]


GATE = row(
    "rollout-reviews",
    timedelta(minutes=3, seconds=5),
    service="reviews",
    phase="WaitingForApproval",
    step=2,
    canary_weight=20,
    waiting_for="approval",
)
INVALID = row(
    "rollout-ratings-fix",
    timedelta(hours=26),
    service="ratings",
    phase="Failed",
    step=0,
    status="failed",
    closed_at=NOW - timedelta(hours=26),
)
OLD = row("rollout-details", timedelta(days=40), phase="Succeeded", status="completed")


def test_the_table_aligns_columns_and_marks_what_a_rollout_never_set() -> None:
    assert render_table([GATE, INVALID, OLD], NOW).splitlines() == [
        "ROLLOUT               SERVICE   PHASE                STEP   CANARY   WAITING    AGE    STATUS",
        "rollout-reviews       reviews   WaitingForApproval   2      20%      approval   3m5s   running",
        "rollout-ratings-fix   ratings   Failed               0      -        -          1d2h   failed",
        "rollout-details       -         Succeeded            -      -        -          40d    completed",
    ]


def test_a_weight_of_zero_is_shown_not_hidden() -> None:
    rolled_back = row("r", timedelta(seconds=1), phase="RolledBack", step=1, canary_weight=0, status="failed")
    assert render_table([rolled_back], NOW).splitlines()[1].split() == [
        "r",
        "-",
        "RolledBack",
        "1",
        "0%",
        "-",
        "1s",
        "failed",
    ]


def test_no_line_is_wrapped_or_padded_at_its_end() -> None:
    long_id = "rollout-" + "x" * 150
    lines = render_table([row(long_id, timedelta(0), phase="Progressing")], NOW).splitlines()
    assert len(lines) == 2 and lines[1].startswith(long_id) and len(lines[1]) > 150
    assert all(line == line.rstrip() for line in lines)


def test_json_rows() -> None:
    assert rows_as_json([GATE, INVALID], NOW) == [
        {
            "rolloutId": "rollout-reviews",
            "runId": "run-rollout-reviews",
            "service": "reviews",
            "phase": "WaitingForApproval",
            "step": 2,
            "canaryWeight": 20,
            "waitingFor": "approval",
            "status": "running",
            "startedAt": "2026-12-05T11:56:55+00:00",
            "closedAt": None,
            "ageSeconds": 185,
        },
        {
            "rolloutId": "rollout-ratings-fix",
            "runId": "run-rollout-ratings-fix",
            "service": "ratings",
            "phase": "Failed",
            "step": 0,
            "canaryWeight": None,
            "waitingFor": None,
            "status": "failed",
            "startedAt": "2026-12-04T10:00:00+00:00",
            "closedAt": "2026-12-04T10:00:00+00:00",
            "ageSeconds": 93600,
        },
    ]
    assert json.loads(render([GATE], ListOutput.json, NOW))[0]["rolloutId"] == GATE.rollout_id
    assert render([], ListOutput.json, NOW) == "[]"


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(seconds=-3), "0s"),  # a clock a little behind the server's
        (timedelta(seconds=59), "59s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=45, seconds=10), "45m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=2, minutes=7), "2h7m"),
        (timedelta(days=3, hours=4, minutes=5), "3d4h"),
        (timedelta(days=12, hours=4), "12d"),
    ],
)
def test_ages(age: timedelta, shown: str) -> None:
    assert format_age(age) == shown


def test_the_query_of_each_filter() -> None:
    base = "WorkflowType = 'Rollout' AND ExecutionStatus != 'ContinuedAsNew'"
    assert list_query() == base
    assert list_query(phase="waitingforapproval") == base + " AND SluicePhase = 'WaitingForApproval'"
    assert list_query(service="reviews", running=True) == (
        base + " AND SluiceService = 'reviews' AND ExecutionStatus = 'Running'"
    )


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"phase": "Waiting"}, "--phase: unknown phase 'Waiting' (one of Initializing, Progressing,"),
        (
            {"service": "x' OR WorkflowType != '"},
            "--service: \"x' OR WorkflowType != '\" is not a service name",
        ),
        ({"service": ""}, "--service: '' is not a service name"),
    ],
)
def test_filters_that_cannot_go_into_a_query_are_refused_naming_the_option(
    filters: dict[str, str], message: str
) -> None:
    with pytest.raises(ListFilterError) as refused:
        list_query(**filters)  # type: ignore[arg-type]
    assert str(refused.value).startswith(message)

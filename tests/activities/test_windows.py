"""``deployment_window``: the decision with the worker's own zone data, as the workflow asks it."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.testing import ActivityEnvironment

from activities.windows import deployment_window
from workflows.windows import Blackout, DeploymentWindow, WindowDecision, WindowInput

OFFICE = DeploymentWindow(
    days=["Mon", "Tue", "Wed", "Thu", "Fri"], start="09:00", end="16:00", timezone="Europe/Berlin"
)


def test_the_activity_decides_with_the_workers_zone_data() -> None:
    request = WindowInput(windows=[OFFICE], now=datetime(2026, 12, 4, 16, tzinfo=UTC))
    decision = ActivityEnvironment().run(deployment_window, request)
    assert decision == WindowDecision(
        open=False,
        until=datetime(2026, 12, 7, 8, tzinfo=UTC),
        reason="outside deployment windows (Mon-Fri 09:00-16:00 Europe/Berlin); "
        "next opening Mon 2026-12-07 09:00 CET",
    )


def test_the_input_round_trips_as_the_workflow_sends_it() -> None:
    """What the workflow puts into history (camelCase JSON, offsets kept) is what the activity reads."""
    freeze = Blackout.model_validate(
        {
            "start": "2026-12-20T00:00:00+01:00",
            "end": "2027-01-04T00:00:00+01:00",
            "reason": "year-end freeze",
        }
    )
    sent = WindowInput(windows=[OFFICE], blackouts=[freeze], now=datetime(2026, 12, 21, 10, tzinfo=UTC))
    received = WindowInput.model_validate_json(sent.model_dump_json())
    assert received == sent
    decision = ActivityEnvironment().run(deployment_window, received)
    assert decision.reason.startswith("blackout: year-end freeze until 2027-01-04T00:00+01:00")

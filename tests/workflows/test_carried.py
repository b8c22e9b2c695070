"""The carried state: older checkpoints still resume, and it stays bounded however long a rollout
waits. The server half of each claim is in test_rollout_continue_as_new.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.histories.record import HISTORIES
from workflows.carried import RolloutState, derive_phase
from workflows.models import EventRecord
from workflows.state import KEEP_EVENTS, RolloutStatus

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
OLD_RUN = HISTORIES / "2026-12-05-b581b9a" / "continue_as_new_in_a_wait.run2.json"


def started_with(path: Any) -> list[Any]:
    """The arguments a saved run was started with (spec, carried state)."""
    first = json.loads(path.read_text())["events"][0]
    payloads = first["workflowExecutionStartedEventAttributes"]["input"]["payloads"]
    return [json.loads(base64.b64decode(p["data"])) for p in payloads]


def test_the_checkpoint_an_older_worker_carried_reads_into_the_state() -> None:
    _, checkpoint = started_with(OLD_RUN)
    assert "analysisHold" in checkpoint and "phaseBeforePause" in checkpoint  # really the old shape
    state = RolloutState.model_validate(checkpoint)
    assert state.legacy_phase_rules
    assert state.status.waiting_for is not None and state.status.waiting_for.step == 2
    assert state.deadlines.keys() == {"approval:2"}
    assert state.last_set is not None and state.last_set.canary == 10
    assert state.shifted_steps == [1]
    # and what the new state writes reads back the same
    assert RolloutState.model_validate(state.model_dump(mode="json")) == state


def test_an_older_single_pause_record_becomes_its_condition() -> None:
    base = {"rolloutId": "r", "service": "s", "namespace": "default", "phase": "Paused"}
    waiting = {"kind": "approval", "step": 2, "since": NOW.isoformat()}
    cases = {"erin": "Manual", "analysis": "InconclusiveAnalysis", "sluicegate": "Drift"}
    for by, reason in cases.items():
        checkpoint = {
            "status": {
                **base,
                "waitingFor": waiting,
                "paused": {"by": by, "reason": "why", "at": NOW.isoformat()},
            },
            "analysisHold": by == "analysis",
            "phaseBeforePause": "WaitingForApproval",
        }
        state = RolloutState.model_validate(checkpoint)
        [condition] = state.status.pause_conditions
        assert (condition.reason, condition.by, condition.message) == (reason, by, "why")
        assert state.status.paused is not None and state.status.paused.by == by
        assert derive_phase(state) == "Paused"
    # a pause that arrived before the wait began was not shown over it by the older worker
    hidden = RolloutState.model_validate({**checkpoint, "phaseBeforePause": None})
    assert hidden.pause_hidden and derive_phase(hidden) == "WaitingForApproval"


def test_ten_thousand_events_keep_the_carried_state_bounded() -> None:
    status = RolloutStatus(rollout_id="r", service="s", namespace="default")
    sizes = []
    for number in range(10_000):
        detail = {"signal": "approve", "reason": "the rollout waits for approval at step 2, not step 9"}
        event = EventRecord(
            at=NOW + timedelta(seconds=number), event="signalRefused", step=2, by="m", detail=detail
        )
        status.add_event(event)
        if number + 1 in (KEEP_EVENTS, 10_000):
            sizes.append(len(RolloutState(status=status).model_dump_json()))
    assert len(status.events) == KEEP_EVENTS
    assert status.events[-1].at == NOW + timedelta(seconds=9_999)
    assert status.event_counts == {"signalRefused": 10_000}
    assert sizes[1] - sizes[0] <= 8  # only the count's digits grew

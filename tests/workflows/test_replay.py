"""The replay safety net: every saved ``Rollout`` history replays on the current workflow code.

Histories under ``tests/histories/<label>/`` were recorded by older workers (see
``tests/histories/record.py``). A worker upgraded in the middle of a rollout replays that
rollout's history before it carries on, so a change that makes any of them fail here would
wedge real rollouts in flight: put such a change behind ``workflow.patched(...)`` instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.histories.record import HISTORIES, SCENARIOS
from worker.main import WORKFLOW_RUNNER
from workflows.rollout import Rollout

SAVED = sorted(HISTORIES.glob("*/*.json"))
LABELS = sorted({path.parent.name for path in SAVED})

# What the first recording (before the workflow was split into components) must hold.
REQUIRED = {
    "default_plan_approved_by_update",
    "approvals_by_signal",
    "pause_and_resume_at_a_gate",
    "promote_then_full_promotion",
    "abort_at_a_gate",
    "cancel_while_paused",
    "drift_at_a_wait_then_resume",
    "drift_on_change_then_resume",
    "verification_failure",
    "approval_timeout",
    "analysis_failure",
    "inconclusive_pause_then_resume",
    "continue_as_new_in_a_wait",
    "remove_old_with_delay",
    "invalid_spec",
}


def test_every_recording_holds_the_required_scenarios() -> None:
    assert LABELS, f"no saved histories under {HISTORIES}"
    assert {s.name for s in SCENARIOS} >= REQUIRED
    for label in LABELS:
        names = {path.name.split(".")[0] for path in (HISTORIES / label).glob("*.json")}
        assert names >= REQUIRED, f"{label} lacks {sorted(REQUIRED - names)}"
    # the continue-as-new scenario really crossed into a second run
    assert all((HISTORIES / label / "continue_as_new_in_a_wait.run2.json").exists() for label in LABELS)


@pytest.mark.parametrize("path", SAVED, ids=[f"{p.parent.name}/{p.stem}" for p in SAVED])
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    # Replayed in the sandbox the worker runs (its passthrough modules), as a worker would.
    replayer = Replayer(
        workflows=[Rollout], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.relative_to(HISTORIES)}: {result.replay_failure!r}"

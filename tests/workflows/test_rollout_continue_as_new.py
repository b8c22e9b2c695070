"""A long wait continues-as-new when Temporal suggests it, carrying the whole rollout state.

A dev server of its own suggests continue-as-new after 40 history events (the default is
thousands), so a few dozen signals are enough to cross it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.histories.record import dry_router
from tests.support.rollouts import dry_run_spec, wait_for_status
from tests.workflows.test_carried import OLD_RUN, started_with
from worker.main import build_worker
from workflows.models import Weights
from workflows.state import KEEP_EVENTS


async def test_long_approval_wait_continues_as_new_and_keeps_everything(
    small_history_env: WorkflowEnvironment,
) -> None:
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    spec = dry_run_spec([{"setWeight": 10}, {"approval": {"timeout": "1h"}}, {"setWeight": 100}])
    async with build_worker(client, queue):
        handle = await client.start_workflow(
            "Rollout", spec, id=f"rollout-can-{uuid.uuid4()}", task_queue=queue
        )
        first = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        # Refused signals are history events too (and audit records that must survive).
        for number in range(30):
            await handle.signal("approve", {"by": f"mallory-{number}", "step": 9})
        status = await wait_for_status(
            handle, lambda s: s["runs"] >= 2 and s["phase"] == "WaitingForApproval"
        )
        assert status["waitingFor"]["until"] == first["waitingFor"]["until"]  # same deadline, not restarted
        assert (
            status["waitingFor"]["since"] == first["waitingFor"]["since"]
        )  # the gate's start (approval wait)
        assert status["weights"] == {"stable": 90, "canary": 10}
        await handle.execute_update("approve", {"by": "alice", "step": 2})
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["runs"] >= 2
    assert [(a["by"], a["step"]) for a in summary["approvals"]] == [("alice", 2)]
    assert sum(e["event"] == "signalRefused" for e in summary["events"]) == 30
    # No step ran twice across the runs.
    assert [(e["step"], e["detail"]["canary"]) for e in summary["events"] if e["event"] == "weightsSet"] == [
        (0, 0),
        (1, 10),
        (3, 100),
    ]
    assert [s["state"] for s in summary["steps"]] == ["done"] * 4


async def test_a_rollout_carried_in_the_older_checkpoint_shape_resumes(
    small_history_env: WorkflowEnvironment,
) -> None:
    """Start a run with the exact arguments an older worker's continue-as-new used (from a saved
    history): it waits at the same gate until the same deadline and finishes without redoing a step."""
    spec, checkpoint = started_with(OLD_RUN)
    # The recorded deadline has passed since; move it an hour ahead, keeping the older shape.
    deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    checkpoint["deadlines"]["approval:2"] = checkpoint["status"]["waitingFor"]["until"] = deadline
    dry_router(spec).set_routes(Weights(stable=90, canary=10))  # where that rollout had left its route
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    async with build_worker(client, queue):
        handle = await client.start_workflow(
            "Rollout", args=[spec, checkpoint], id=f"rollout-old-{uuid.uuid4()}", task_queue=queue
        )
        status = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        assert status["waitingFor"]["step"] == 2
        assert status["waitingFor"]["until"] == deadline
        await handle.execute_update("approve", {"by": "alice", "step": 2})
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["runs"] == checkpoint["status"]["runs"]
    shifts = [(e["step"], e["detail"]["canary"]) for e in summary["events"] if e["event"] == "weightsSet"]
    assert shifts == [(0, 0), (1, 10), (3, 100)]  # the first two from the carried state, then step 3


async def test_a_flood_of_refused_signals_does_not_grow_the_carried_state(
    small_history_env: WorkflowEnvironment,
) -> None:
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    spec = dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}])
    async with build_worker(client, queue):
        handle = await client.start_workflow(
            "Rollout", spec, id=f"rollout-many-{uuid.uuid4()}", task_queue=queue
        )
        await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        # Refuse until a run starts with its kept events full, then 400 more: the carried state
        # must not grow with them (tests/workflows/test_carried.py takes the state itself through
        # 10,000). Names of one width keep every refused event the same size.
        sent = 0
        while True:
            await refuse(handle, sent, sent + 100)
            sent += 100
            await wait_for_status(handle, refused(sent))
            early, kept = await carried(client, handle.id)
            if len(kept["status"]["events"]) == KEEP_EVENTS:
                break
            assert sent < 1_000, f"no run started with {KEEP_EVENTS} kept events after {sent} signals"
        await refuse(handle, sent, sent + 400)
        sent += 400
        status = await wait_for_status(handle, refused(sent), timeout=120)
        assert status["runs"] >= 2 and len(status["events"]) == KEEP_EVENTS
        # What the latest run was started with: the carried state, bounded whatever came before
        # (slack for counters that gain a digit and timestamps of other widths; a leak of two
        # bytes a refusal would show).
        late, kept = await carried(client, handle.id)
        assert len(kept["status"]["events"]) == KEEP_EVENTS
        assert late <= early + 512 and late < 64 * 1024, (early, late)
        await handle.execute_update("approve", {"by": "alice", "step": 2})
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["eventCounts"]["signalRefused"] == sent


async def refuse(handle: WorkflowHandle[Any, Any], first: int, end: int) -> None:
    """Signals ``approve`` for a step that is not waiting (each refused), numbered first..end-1."""
    await asyncio.gather(
        *(handle.signal("approve", {"by": f"m-{n:05d}", "step": 9}) for n in range(first, end))
    )


def refused(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status["eventCounts"].get("signalRefused") == count


async def carried(client: Client, workflow_id: str) -> tuple[int, dict[str, Any]]:
    """The size and content of the state the latest run of ``workflow_id`` was started with."""
    latest = await client.get_workflow_handle(workflow_id).fetch_history()
    payloads = latest.events[0].workflow_execution_started_event_attributes.input.payloads
    if len(payloads) < 2:  # the first run: started with the spec alone
        return 0, {"status": {"events": []}}
    return len(payloads[1].data), json.loads(payloads[1].data)


async def test_a_four_eyes_gate_held_after_its_timeout_keeps_its_approvals_across_runs(
    small_history_env: WorkflowEnvironment,
) -> None:
    """One approval, then the gate's timeout holds the rollout (``onTimeout: pause``), then a new
    run: the approval, the policy (taken from the spec again) and the hold are all still there."""
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    gate = {"timeout": "2s", "onTimeout": "pause", "policy": {"approvers": ["alice", "bob"], "required": 2}}
    spec = dry_run_spec([{"setWeight": 10}, {"approval": gate}, {"setWeight": 100}])
    async with build_worker(client, queue):
        handle = await client.start_workflow(
            "Rollout", spec, id=f"rollout-can-policy-{uuid.uuid4()}", task_queue=queue
        )
        began = (await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval"))["waitingFor"]
        await handle.execute_update("approve", {"by": "alice"})
        await wait_for_status(handle, lambda s: s["phase"] == "Paused")
        for number in range(30):
            await handle.signal("approve", {"by": f"mallory-{number}"})  # refused by the policy
        status = await wait_for_status(handle, lambda s: s["runs"] >= 2 and s["phase"] == "Paused")
        assert status["waitingFor"]["kind"] == "approval" and status["waitingFor"]["until"] is None
        assert status["waitingFor"]["since"] == began["since"]  # held and carried on, the gate began then
        assert status["waitingFor"]["approvedBy"] == ["alice"]
        assert [c["reason"] for c in status["pauseConditions"]] == ["ApprovalTimedOut"]
        refused = [e["detail"]["reason"] for e in status["events"] if e["event"] == "signalRefused"]
        assert refused[-1] == "mallory-29 may not approve (approvers: alice, bob)"

        answer = await handle.execute_update("approve", {"by": "bob"})
        assert answer["message"] == "step 2 approved by alice, bob (2 of 2)"
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["pauseConditions"] == []
    assert sum(e["event"] == "approvalTimedOut" for e in summary["events"]) == 1  # not again in run 2


async def test_a_long_window_wait_continues_as_new_and_waits_for_the_same_opening(
    small_history_env: WorkflowEnvironment,
) -> None:
    client = small_history_env.client
    queue = f"test-{uuid.uuid4()}"
    closed_day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[(datetime.now(UTC).weekday() + 3) % 7]
    windows = [{"days": [closed_day], "start": "00:00", "end": "01:00", "timezone": "UTC"}]
    spec = dry_run_spec([{"setWeight": 10}], windows=windows)
    async with build_worker(client, queue):
        handle = await client.start_workflow(
            "Rollout", spec, id=f"rollout-can-{uuid.uuid4()}", task_queue=queue
        )
        first = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForWindow")
        for number in range(30):
            await handle.signal("approve", {"by": f"mallory-{number}"})
        status = await wait_for_status(handle, lambda s: s["runs"] >= 2 and s["phase"] == "WaitingForWindow")
        assert status["waitingFor"]["until"] == first["waitingFor"]["until"]
        assert status["weights"] == {"stable": 100, "canary": 0}
        await handle.execute_update("promote", {"by": "alice", "ignoreWindow": True})
        summary = await handle.result()
    assert summary["phase"] == "Succeeded" and summary["runs"] >= 2
    assert [(e["step"], e["detail"]["canary"]) for e in summary["events"] if e["event"] == "weightsSet"] == [
        (0, 0),
        (1, 10),
    ]
    assert [e["by"] for e in summary["events"] if e["event"] == "windowOverridden"] == ["alice"]

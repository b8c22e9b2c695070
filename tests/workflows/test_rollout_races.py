"""Messages that race each other or an in-flight traffic change, on a real dev server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError

from activities.routers.dry_run import DryRunRouter
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.models import RouteState, SetWeightsInput


def waiting_at(step: int) -> Any:
    return lambda s: s["phase"] == "WaitingForApproval" and s["waitingFor"]["step"] == step


def with_slow_set_weights(
    seconds: float, canary: int, started: asyncio.Event, heartbeat: bool = True
) -> list[Any]:
    """The worker's activities, with a set_weights that takes ``seconds`` when asked for
    ``canary``% and otherwise writes the dryRun route at once. Without ``heartbeat`` a
    cancellation cannot reach it: it completes normally, as a short write does."""

    @activity.defn(name="set_weights")
    async def set_weights(request: SetWeightsInput) -> RouteState:
        if request.weights.canary == canary:
            started.set()
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if heartbeat:
                    activity.heartbeat()
                await asyncio.sleep(0.2)
        router = DryRunRouter(request.namespace, request.service, request.stable, request.canary)
        return router.set_routes(request.weights)

    return [set_weights]


async def test_approve_and_abort_at_the_same_moment_always_roll_back(client: Client, task_queue: str) -> None:
    plans: list[list[dict[str, Any]]] = [
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}],
        [{"setWeight": 10}, {"approval": {}}],  # the last gate: the plan ends as the abort comes
    ]
    async with build_worker(client, task_queue):
        for steps in plans * 3:
            spec = dry_run_spec(steps)
            handle = await start_rollout(client, task_queue, spec)
            await wait_for_status(handle, waiting_at(2))
            answers = await asyncio.gather(
                handle.execute_update("approve", {"by": "alice", "step": 2}),
                handle.execute_update("abort", {"by": "dave", "reason": "race"}),
                return_exceptions=True,
            )
            if isinstance(answers[1], BaseException):
                # The abort was not accepted (the rollout finished first): the caller was told so.
                assert (await asyncio.wait_for(handle.result(), timeout=20))["phase"] == "Succeeded"
                continue
            error = await asyncio.wait_for(failure_of(handle), timeout=20)
            assert error.type == "RolloutAborted"
            assert (await handle.query("status"))["weights"] == {"stable": 100, "canary": 0}


async def test_two_approvals_of_one_gate_pass_it_once(client: Client, task_queue: str) -> None:
    spec = dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}])
    async with build_worker(client, task_queue):
        handle = await start_rollout(client, task_queue, spec)
        await wait_for_status(handle, waiting_at(2))
        answers = await asyncio.gather(
            handle.execute_update("approve", {"by": "alice"}),
            handle.execute_update("approve", {"by": "bob"}),
            return_exceptions=True,
        )
        refused = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
        assert len(refused) == 1, answers
        # refused before the plan moved on, or after (then nothing waits at step 2 any more)
        reason = str(refused[0].cause)
        assert "step 2 was already approved" in reason or "nothing is waiting for approval" in reason
        status = await wait_for_status(handle, waiting_at(4))
        assert [a["step"] for a in status["approvals"]] == [2]
    # Two signals sent while no worker runs reach the next worker in one activation.
    await handle.signal("approve", {"by": "carol"})
    await handle.signal("approve", {"by": "erin"})
    async with build_worker(client, task_queue):
        status = await wait_for_status(handle, lambda s: s["eventCounts"].get("signalRefused") == 1)
        assert [a["step"] for a in status["approvals"]] == [2, 4]
        assert status["approvals"][1]["by"] == "carol"
        [refused_signal] = [e for e in status["events"] if e["event"] == "signalRefused"]
        assert refused_signal["by"] == "erin"
        assert refused_signal["detail"]["reason"] == "step 4 was already approved by carol; it is moving on"
        summary = await asyncio.wait_for(handle.result(), timeout=20)
    assert summary["phase"] == "Succeeded"


async def test_a_resume_after_a_pause_during_a_change_does_not_pass_the_next_gate(
    client: Client, task_queue: str
) -> None:
    started = asyncio.Event()
    queue = f"{task_queue}-slow"
    activities = with_slow_set_weights(1.5, 10, started)
    async with build_worker(client, queue, replacing=activities):
        handle = await start_rollout(client, queue, dry_run_spec([{"setWeight": 10}, {"approval": {}}]))
        await asyncio.wait_for(started.wait(), timeout=10)
        await handle.execute_update("pause", {"by": "erin", "reason": "look first"})
        await wait_for_status(
            handle, lambda s: s["phase"] == "Paused" and s["waitingFor"]["kind"] == "resume"
        )
        await handle.execute_update("resume", {"by": "erin"})
        status = await wait_for_status(handle, waiting_at(2))
        await asyncio.sleep(0.5)
        status = await handle.query("status")
        assert status["phase"] == "WaitingForApproval" and status["approvals"] == []
        await handle.execute_update("approve", {"by": "alice", "step": 2})
        assert (await asyncio.wait_for(handle.result(), timeout=20))["phase"] == "Succeeded"


async def test_abort_and_cancel_during_a_slow_change_roll_back_once_it_is_cancelled(
    client: Client, task_queue: str
) -> None:
    for action in ("abort", "cancel"):
        started = asyncio.Event()
        queue = f"{task_queue}-{action}"
        activities = with_slow_set_weights(60, 50, started)
        async with build_worker(client, queue, replacing=activities):
            spec = dry_run_spec([{"setWeight": 10}, {"setWeight": 50}, {"approval": {}}])
            handle = await start_rollout(client, queue, spec)
            await asyncio.wait_for(started.wait(), timeout=10)
            sent = time.monotonic()
            if action == "abort":
                await handle.execute_update("abort", {"by": "dave"})
            else:
                await handle.cancel()
            error = await asyncio.wait_for(failure_of(handle), timeout=30)
            took = time.monotonic() - sent
            status = await handle.query("status")
        assert error.type == ("RolloutAborted" if action == "abort" else "RolloutCancelled")
        assert took < 15, f"{action} took {took:.1f}s to roll back"
        assert status["phase"] == "RolledBack" and status["weights"] == {"stable": 100, "canary": 0}


async def test_abort_while_a_change_completes_regardless_still_rolls_back(
    client: Client, task_queue: str
) -> None:
    """A change that cannot hear its cancellation completes normally; the plan must not walk on
    to its next gate and wait there (the rollout stayed Running, never rolled back)."""
    started = asyncio.Event()
    queue = f"{task_queue}-deaf"
    activities = with_slow_set_weights(1.5, 50, started, heartbeat=False)
    async with build_worker(client, queue, replacing=activities):
        spec = dry_run_spec([{"setWeight": 10}, {"setWeight": 50}, {"approval": {}}])
        handle = await start_rollout(client, queue, spec)
        await asyncio.wait_for(started.wait(), timeout=10)
        await handle.execute_update("abort", {"by": "dave"})
        error = await asyncio.wait_for(failure_of(handle), timeout=30)
        status = await handle.query("status")
    assert error.type == "RolloutAborted"
    assert status["phase"] == "RolledBack" and status["weights"] == {"stable": 100, "canary": 0}

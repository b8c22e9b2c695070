"""The Rollout workflow on a real Temporal dev server.

Most tests use the real activities with the dryRun router (no data plane needed); a few register
fakes under the real activity names to inject failures. The real Envoy path is covered in
tests/e2e.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.policy import WorkerPolicy
from activities.routers.dry_run import DryRunRouter
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.measurements import MeasureInput, MeasureResult
from workflows.models import (
    AbortInput,
    ApproveInput,
    PauseInput,
    PromoteInput,
    ResumeInput,
    RouteInput,
    RouteState,
    SampleInput,
    SampleResult,
    SetWeightsInput,
)
from workflows.spec import Destination


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    async with build_worker(client, task_queue) as running:
        yield running


def waiting_at(step: int) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s["phase"] == "WaitingForApproval" and s["waitingFor"]["step"] == step


def dry_route(spec: dict[str, Any]) -> RouteState:
    """What the dryRun router holds for this spec now (it lives in this test process)."""
    return DryRunRouter(
        "default",
        spec["service"],
        Destination.model_validate(spec["stable"]),
        Destination.model_validate(spec["canary"]),
    ).get_routes()


async def test_default_plan_runs_to_completion_with_approvals_recorded(
    client: Client, task_queue: str, worker: Worker
) -> None:
    spec = dry_run_spec()
    handle = await start_rollout(client, task_queue, spec)

    status = await wait_for_status(handle, waiting_at(2))
    assert status["currentStep"] == 2
    assert status["weights"] == {"stable": 90, "canary": 10}
    assert [s["kind"] for s in status["steps"]] == [
        "initialize", "setWeight", "approval", "setWeight", "approval", "setWeight", "approval", "removeOld",
    ]  # fmt: skip
    assert status["waitingFor"]["kind"] == "approval"

    for step, expected in ((2, {"stable": 50, "canary": 50}), (4, {"stable": 0, "canary": 100}), (6, None)):
        result = await handle.execute_update(
            "approve", ApproveInput(by="alice", step=step, comment=f"ok {step}")
        )
        assert result["accepted"] and result["currentStep"] == step
        if expected is not None:
            status = await wait_for_status(handle, waiting_at(step + 2))
            assert status["weights"] == expected

    summary = await handle.result()
    assert summary["phase"] == "Succeeded"
    assert summary["weights"] == {"stable": 0, "canary": 100}
    assert [(a["by"], a["step"], a["comment"], a["via"]) for a in summary["approvals"]] == [
        ("alice", 2, "ok 2", "update"),
        ("alice", 4, "ok 4", "update"),
        ("alice", 6, "ok 6", "update"),
    ]
    assert all(step["state"] == "done" for step in summary["steps"])
    weights_set = [
        (e["step"], e["detail"]["canary"]) for e in summary["events"] if e["event"] == "weightsSet"
    ]
    assert weights_set == [(0, 0), (1, 10), (3, 50), (5, 100)]
    route = dry_route(spec)
    assert (route.stable, route.canary) == (None, 100)


async def test_updates_refuse_with_a_reason(client: Client, task_queue: str, worker: Worker) -> None:
    handle = await start_rollout(
        client,
        task_queue,
        dry_run_spec([{"setWeight": 10}, {"pause": {}}, {"approval": {}}, {"setWeight": 100}]),
    )
    await wait_for_status(handle, lambda s: s["phase"] == "Paused")

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("approve", ApproveInput(by="alice"))
    assert "nothing is waiting for approval" in str(refused.value.cause)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("promote", {"by": "   "})
    assert "promote: by: must name who acts" in str(refused.value.cause)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("approve", {"by": "alice", "stepp": 3})
    assert "approve: stepp: unknown key" in str(refused.value.cause)

    await handle.execute_update("resume", ResumeInput(by="bob"))
    await wait_for_status(handle, waiting_at(3))
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("approve", ApproveInput(by="alice", step=1))
    assert "waits for approval at step 3, not step 1" in str(refused.value.cause)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("resume", ResumeInput(by="bob"))
    assert "not paused" in str(refused.value.cause)

    await handle.execute_update("approve", ApproveInput(by="alice", step=3))
    assert (await handle.result())["phase"] == "Succeeded"


async def test_signals_approve_and_refused_signals_are_recorded(
    client: Client, task_queue: str, worker: Worker
) -> None:
    handle = await start_rollout(
        client, task_queue, dry_run_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 100}])
    )
    await wait_for_status(handle, waiting_at(2))

    await handle.signal("approve", ApproveInput(by="mallory", step=7))
    status = await wait_for_status(handle, lambda s: any(e["event"] == "signalRefused" for e in s["events"]))
    refused = next(e for e in status["events"] if e["event"] == "signalRefused")
    assert refused["by"] == "mallory" and "not step 7" in refused["detail"]["reason"]
    assert status["phase"] == "WaitingForApproval" and status["approvals"] == []

    # A payload Temporal could decode but we cannot: recorded as refused, not dropped silently.
    await handle.signal("approve", {"by": 42})
    await wait_for_status(handle, lambda s: sum(e["event"] == "signalRefused" for e in s["events"]) == 2)
    await handle.signal("approve", ApproveInput(by="carol", comment="lgtm"))
    summary = await handle.result()
    assert [(a["by"], a["step"], a["via"]) for a in summary["approvals"]] == [("carol", 2, "signal")]


async def test_abort_rolls_back_to_stable(client: Client, task_queue: str, worker: Worker) -> None:
    spec = dry_run_spec([{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}])
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, waiting_at(2))
    assert (dry_route(spec).stable, dry_route(spec).canary) == (70, 30)

    answer = await handle.execute_update("abort", AbortInput(by="dave", reason="p99 too high"))
    assert answer["accepted"]
    error = await failure_of(handle)
    assert error.type == "RolloutAborted"
    assert "dave" in error.message and "p99 too high" in error.message
    status = await handle.query("status")
    assert status["phase"] == "RolledBack" and status["weights"] == {"stable": 100, "canary": 0}
    assert (dry_route(spec).stable, dry_route(spec).canary) == (100, 0)
    # Once rolling back, further actions are refused.
    assert status["errorType"] == "RolloutAborted"


async def test_cancel_rolls_back_to_stable(client: Client, task_queue: str, worker: Worker) -> None:
    spec = dry_run_spec([{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}])
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, lambda s: s["phase"] == "Paused")
    await handle.cancel()
    error = await failure_of(handle)
    assert error.type == "RolloutCancelled"
    assert (dry_route(spec).stable, dry_route(spec).canary) == (100, 0)


async def test_pause_holds_between_steps_and_resume_goes_on(
    client: Client, task_queue: str, worker: Worker
) -> None:
    spec = dry_run_spec(
        [{"setWeight": 10}, {"approval": {}}, {"setWeight": 60}, {"approval": {}}, {"setWeight": 100}]
    )
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, waiting_at(2))
    await handle.execute_update("pause", PauseInput(by="erin", reason="holiday"))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("pause", PauseInput(by="erin"))
    # The gate can still be approved; the hold keeps the next step from running.
    await handle.execute_update("approve", ApproveInput(by="alice", step=2))
    status = await wait_for_status(handle, lambda s: s["phase"] == "Paused")
    assert status["weights"] == {"stable": 90, "canary": 10}
    assert status["paused"]["by"] == "erin" and "holiday" in status["waitingFor"]["reason"]
    await asyncio.sleep(0.5)
    assert dry_route(spec).canary == 10

    await handle.execute_update("resume", ResumeInput(by="erin"))
    status = await wait_for_status(handle, waiting_at(4))
    assert status["weights"] == {"stable": 40, "canary": 60}
    await handle.execute_update("approve", ApproveInput(by="alice"))
    assert (await handle.result())["phase"] == "Succeeded"


async def test_promote_skips_a_gate_and_full_promotion_goes_to_100(
    client: Client, task_queue: str, worker: Worker
) -> None:
    spec = dry_run_spec()
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, waiting_at(2))
    await handle.execute_update("promote", PromoteInput(by="frank"))
    await wait_for_status(handle, waiting_at(4))
    await handle.execute_update("promote", PromoteInput(by="frank", full=True, comment="ship it"))
    summary = await handle.result()
    assert summary["phase"] == "Succeeded"
    assert [s["state"] for s in summary["steps"]] == [
        "done",
        "done",
        "done",
        "done",
        "done",
        "skipped",
        "skipped",
        "done",
    ]
    assert [(a["by"], a["step"], a["kind"]) for a in summary["approvals"]] == [
        ("frank", 2, "promote"),
        ("frank", 4, "promote"),
    ]
    assert (dry_route(spec).stable, dry_route(spec).canary) == (None, 100)


async def test_invalid_spec_fails_at_once_and_touches_nothing(client: Client, task_queue: str) -> None:
    called: list[str] = []

    @activity.defn(name="read_route")
    async def read_route(route: RouteInput) -> RouteState:
        called.append("read_route")
        raise AssertionError("must not run")

    bad = dry_run_spec([{"setWeight": 150}, {"setWieght": 10}])
    async with build_worker(client, task_queue, replacing=[read_route]):
        handle = await start_rollout(client, task_queue, bad)
        error = await failure_of(handle)
    assert error.type == "InvalidSpec"
    assert "steps[0].setWeight: must be 0..100, got 150" in error.message
    assert "steps[1].setWieght: unknown step kind" in error.message
    assert called == []


async def test_a_split_check_that_cannot_fail_is_refused_at_start(client: Client, task_queue: str) -> None:
    called: list[str] = []

    @activity.defn(name="read_route")
    async def read_route(route: RouteInput) -> RouteState:
        called.append("read_route")
        raise AssertionError("must not run")

    verify = {"url": "http://127.0.0.1:9/", "header": "x-version"}  # 200 samples, alpha 0.001
    blind = dry_run_spec([{"setWeight": 2}, {"setWeight": 50}], verify=verify)
    async with build_worker(client, task_queue, replacing=[read_route]):
        error = await failure_of(await start_rollout(client, task_queue, blind))
    assert error.type == "InvalidSpec"
    assert (
        "steps[0].setWeight: at 2% the split check cannot tell a dead canary from the intended split "
        "with 200 samples at alpha 0.001; needs at least 379 samples (verify.samples)"
    ) in error.message
    assert "steps[1]" not in error.message
    assert called == []


async def test_verification_failure_rolls_back(client: Client, task_queue: str) -> None:
    weights_seen: list[tuple[int, int]] = []

    @activity.defn(name="set_weights")
    async def set_weights(request: SetWeightsInput) -> RouteState:
        weights_seen.append((request.weights.stable, request.weights.canary))
        return RouteState(stable=request.weights.stable, canary=request.weights.canary)

    @activity.defn(name="sample_traffic")
    async def sample_traffic(request: SampleInput) -> SampleResult:
        # The data plane "serves" 50/50 whatever it was told.
        expected = request.weights
        passed = expected.canary == 50 or (
            expected.canary in (0,) and expected.stable == 100 and len(weights_seen) > 2
        )
        return SampleResult(
            samples=200,
            stable=100,
            canary=100,
            expected=expected,
            p_value=0.0 if not passed else 1.0,
            alpha=0.001,
            passed=passed,
            reason="" if passed else "served 100:100",
        )

    spec = dry_run_spec(
        [{"setWeight": 50}, {"setWeight": 90}], verify={"url": "http://127.0.0.1:9/", "header": "x-version"}
    )
    async with build_worker(client, task_queue, replacing=[set_weights, sample_traffic]):
        handle = await start_rollout(client, task_queue, spec)
        error = await failure_of(handle)
    # Step 0 at 100/0 already fails: the fake serves 50/50.
    assert error.type == "VerificationFailed"
    assert "expected 100/0" in error.message
    assert weights_seen == [(100, 0), (100, 0)]  # step 0, then the rollback


async def test_non_retryable_activity_error_mid_rollout_rolls_back(client: Client, task_queue: str) -> None:
    weights_seen: list[tuple[int, int]] = []

    @activity.defn(name="set_weights")
    async def set_weights(request: SetWeightsInput) -> RouteState:
        weights_seen.append((request.weights.stable, request.weights.canary))
        if request.weights.canary == 50:
            raise ApplicationError(
                "virtualservices.networking.istio.io is forbidden", type="Forbidden", non_retryable=True
            )
        return RouteState(stable=request.weights.stable, canary=request.weights.canary)

    async with build_worker(client, task_queue, replacing=[set_weights]):
        handle = await start_rollout(
            client, task_queue, dry_run_spec([{"setWeight": 10}, {"setWeight": 50}, {"setWeight": 100}])
        )
        error = await failure_of(handle)
        status = await handle.query("status")
    assert error.type == "Forbidden" and "forbidden" in error.message
    assert weights_seen == [(100, 0), (90, 10), (50, 50), (100, 0)]
    assert status["phase"] == "RolledBack" and status["weights"] == {"stable": 100, "canary": 0}


async def test_missing_route_fails_without_touching_traffic(
    client: Client, task_queue: str, tmp_path: Any
) -> None:
    spec = dry_run_spec(
        router={"kind": "envoy", "routesFile": str(tmp_path / "missing.yaml"), "routeConfig": "reviews"}
    )
    async with build_worker(client, task_queue, WorkerPolicy(routes_dirs=(tmp_path,))):
        handle = await start_rollout(client, task_queue, spec)
        error = await failure_of(handle)
        assert (await handle.query("status"))["phase"] == "Failed"
    assert error.type == "RouteNotFound" and "missing.yaml" in error.message
    assert "no traffic had been changed" in error.message


async def test_pause_at_a_gate_shows_at_once_and_resume_restores_the_wait(
    client: Client, task_queue: str, worker: Worker
) -> None:
    handle = await start_rollout(client, task_queue, dry_run_spec([{"setWeight": 10}, {"approval": {}}]))
    await wait_for_status(handle, waiting_at(2))
    await handle.execute_update("pause", PauseInput(by="erin", reason="incident"))
    status = await handle.query("status")
    assert status["phase"] == "Paused" and status["waitingFor"]["kind"] == "approval"
    assert status["paused"]["reason"] == "incident"
    await handle.execute_update("resume", ResumeInput(by="erin"))
    status = await handle.query("status")
    assert status["phase"] == "WaitingForApproval" and status["paused"] is None
    await handle.execute_update("approve", ApproveInput(by="alice", step=2))
    assert (await handle.result())["phase"] == "Succeeded"


async def test_rollout_ends_while_a_measurement_is_in_flight(client: Client, task_queue: str) -> None:
    """The plan may finish (or roll back) while measure_metrics runs: the cancelled measurement
    must end the analysis loop, not be taken for a failed round that keeps it going forever."""
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    @activity.defn(name="measure_metrics")
    async def slow_measure_metrics(request: MeasureInput) -> MeasureResult:
        started.set()
        await release.wait()  # held until both rollouts have ended
        finished.append(str(activity.info().workflow_id))
        return MeasureResult(measurements=[])

    analysis = {
        "interval": "1s",
        "metrics": [
            {"name": "errors", "prometheus": {"address": "http://127.0.0.1:9", "query": "up"}, "max": 1}
        ],
    }
    async with build_worker(client, task_queue, replacing=[slow_measure_metrics]):
        try:
            done = await start_rollout(
                client, task_queue, dry_run_spec([{"setWeight": 50}, {"setWeight": 100}], analysis=analysis)
            )
            summary = await asyncio.wait_for(done.result(), timeout=20)
            assert summary["phase"] == "Succeeded" and started.is_set()

            started.clear()
            aborted = await start_rollout(
                client, task_queue, dry_run_spec([{"setWeight": 50}, {"approval": {}}], analysis=analysis)
            )
            await wait_for_status(aborted, waiting_at(2))
            await asyncio.wait_for(started.wait(), timeout=10)
            await aborted.execute_update("abort", AbortInput(by="alice"))
            error = await asyncio.wait_for(failure_of(aborted), timeout=20)
            assert error.type == "RolloutAborted"
            assert finished == []  # both ended while their measurement was still running
        finally:
            release.set()  # else the worker's shutdown waits out its grace period for them

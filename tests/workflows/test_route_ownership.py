"""One running rollout per route, whatever the workflow ids, on a real dev server (the claim is a
``RouteClaim`` workflow whose id is derived from the route)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

import workflows.ownership
from tests.support.rollouts import dry_run_spec, failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.route_claim import route_claim_id
from workflows.spec import validate_spec


def waiting_at_gate(status: dict[str, object]) -> bool:
    return status["phase"] == "WaitingForApproval"


async def claim_status(client: Client, spec: dict[str, object]) -> WorkflowExecutionStatus | None:
    claim = client.get_workflow_handle(route_claim_id(validate_spec(spec).route_identity()))
    return (await claim.describe()).status


async def test_a_second_rollout_of_the_same_route_fails_busy_and_touches_nothing(
    client: Client, task_queue: str
) -> None:
    spec = dry_run_spec([{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}])
    async with build_worker(client, task_queue):
        first = await start_rollout(client, task_queue, spec)
        await wait_for_status(first, waiting_at_gate)
        second = await start_rollout(client, task_queue, spec)  # another workflow id, same route
        error = await asyncio.wait_for(failure_of(second), timeout=20)
        assert error.type == "RouteBusy"
        assert first.id in error.message and "onRouteBusy: wait" in error.message
        status = await second.query("status")
        assert status["phase"] == "Failed" and "no traffic had been changed" in status["message"]
        assert not any(e["event"] == "weightsSet" for e in status["events"])
        # the owner is untouched and, once done, frees the route
        assert (await first.query("status"))["weights"] == {"stable": 70, "canary": 30}
        await first.execute_update("approve", {"by": "alice"})
        assert (await first.result())["phase"] == "Succeeded"
        await wait_until_claim(client, spec, WorkflowExecutionStatus.COMPLETED)
        third = await start_rollout(client, task_queue, spec)
        await wait_for_status(third, waiting_at_gate)
        await third.execute_update("abort", {"by": "alice"})
        assert (await failure_of(third)).type == "RolloutAborted"
        await wait_until_claim(client, spec, WorkflowExecutionStatus.COMPLETED)


async def test_on_route_busy_wait_holds_until_the_owner_ends(
    client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflows.ownership, "ROUTE_BUSY_RETRY", timedelta(seconds=1))  # 15 s in production
    steps: list[dict[str, Any]] = [{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}]
    spec = dry_run_spec(steps)
    async with build_worker(client, task_queue):
        first = await start_rollout(client, task_queue, spec)
        await wait_for_status(first, waiting_at_gate)
        second = await start_rollout(client, task_queue, {**spec, "onRouteBusy": "wait"})
        status = await wait_for_status(second, lambda s: (s["waitingFor"] or {}).get("kind") == "route")
        assert status["phase"] == "Initializing" and first.id in status["waitingFor"]["reason"]
        assert status["weights"] is None
        # it asks again while the owner runs, and goes on waiting
        await wait_for_owner_asked(second, times=2)
        status = await second.query("status")
        assert (status["waitingFor"] or {}).get("kind") == "route" and status["weights"] is None
        await first.execute_update("abort", {"by": "alice"})
        await failure_of(first)
        status = await wait_for_status(second, waiting_at_gate)
        assert status["weights"] == {"stable": 70, "canary": 30}
        await second.execute_update("approve", {"by": "alice"})
        assert (await second.result())["phase"] == "Succeeded"


async def wait_for_owner_asked(handle: WorkflowHandle[Any, Any], times: int) -> None:
    """Until the rollout has asked its route claim's owner ``times`` times (history)."""
    for _ in range(200):
        history = await handle.fetch_history()
        asked = [
            event
            for event in history.events
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == "route_claim_owner"
        ]
        if len(asked) >= times:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never asked the route's owner {times} times")


async def test_a_claim_left_by_a_terminated_rollout_does_not_block_the_route(
    client: Client, task_queue: str
) -> None:
    spec = dry_run_spec([{"setWeight": 30}, {"approval": {}}, {"setWeight": 100}])
    async with build_worker(client, task_queue):
        first = await start_rollout(client, task_queue, spec)
        await wait_for_status(first, waiting_at_gate)
        await first.terminate("operator pulled the plug")  # it never releases its claim
        assert await claim_status(client, spec) == WorkflowExecutionStatus.RUNNING
        second = await start_rollout(client, task_queue, spec)
        status = await wait_for_status(second, waiting_at_gate)
        assert any(e["event"] == "routeClaimed" for e in status["events"])
        await second.execute_update("approve", {"by": "alice"})
        assert (await second.result())["phase"] == "Succeeded"


async def wait_until_claim(client: Client, spec: dict[str, object], wanted: WorkflowExecutionStatus) -> None:
    for _ in range(100):
        if await claim_status(client, spec) == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"claim never reached {wanted}")


def test_claim_ids_name_the_route_not_the_rollout() -> None:
    one = validate_spec(dry_run_spec(service="reviews"))
    assert route_claim_id(one.route_identity()) == route_claim_id(one.route_identity())
    envoy = {"kind": "envoy", "routesFile": "/srv/rds/../rds/routes.yaml", "routeConfig": "reviews"}
    a = validate_spec(dry_run_spec(router=envoy))
    b = validate_spec(dry_run_spec(router={**envoy, "routesFile": "/srv/rds/routes.yaml"}))
    assert a.route_identity() == b.route_identity() == "envoy:/srv/rds/routes.yaml#reviews//"
    assert route_claim_id(a.route_identity()).startswith("route-claim-envoy-")
    other = validate_spec(dry_run_spec(router={**envoy, "routeConfig": "ratings"}))
    assert route_claim_id(other.route_identity()) != route_claim_id(a.route_identity())

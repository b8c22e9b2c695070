"""Faults in the data plane and on the worker, through real parts: Envoy serving the two demo
backends, its RDS file edited by the real activities, a real dev server."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.policy import WorkerPolicy, using_policy
from activities.routes import set_weights
from sluice.stack import CANARY, STABLE, DataPlane, sample_versions
from tests.support.binaries import require_binary
from tests.support.e2e import rds_weights
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.models import SetWeightsInput, Weights
from workflows.spec import Destination, EnvoyRouterSpec


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[DataPlane]:
    require_binary("envoy")
    with DataPlane(tmp_path / "plane") as running:
        yield running


def envoy_spec(plane: DataPlane, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    router = {
        "kind": "envoy",
        "routesFile": str(plane.envoy.routes_file),
        "routeConfig": "reviews",
        "admin": plane.admin_url,
    }
    return {
        "service": f"reviews-{uuid.uuid4().hex[:6]}",
        "router": router,
        "stable": {"host": STABLE},
        "canary": {"host": CANARY},
        "steps": steps,
        **extra,
    }


def managing(plane: DataPlane) -> WorkerPolicy:
    """The worker's policy for this plane: it may edit the plane's RDS directory."""
    return WorkerPolicy(routes_dirs=(plane.envoy.routes_file.parent,))


def weights(plane: DataPlane) -> dict[str, int]:
    return rds_weights(plane.envoy.routes_file)


async def test_canary_down_during_verification_fails_it_and_restores_stable(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    plane.backend(CANARY).stop()
    verify = {"url": plane.url, "header": "x-version", "samples": 100, "alpha": 1e-6}
    spec = envoy_spec(plane, [{"setWeight": 50}, {"approval": {}}], verify=verify)
    async with build_worker(client, task_queue, managing(plane)):
        handle = await start_rollout(client, task_queue, spec)
        error = await asyncio.wait_for(failure_of(handle), timeout=60)
        status = await handle.query("status")
    assert error.type == "VerificationFailed" and "expected 50/50" in error.message
    failed = status["verifications"][1]["result"]
    assert failed["canary"] == 0 and failed["errors"] + failed["unclassified"] > 0, failed
    assert status["phase"] == "RolledBack" and weights(plane) == {STABLE: 100, CANARY: 0}
    assert set(sample_versions(plane.url, 20)) == {STABLE}


async def test_a_route_made_read_only_fails_typed_and_the_rollback_waits_until_it_can_write(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    routes_dir = plane.envoy.routes_file.parent
    spec = envoy_spec(plane, [{"setWeight": 20}, {"approval": {}}, {"setWeight": 60}])
    async with build_worker(client, task_queue, managing(plane)):
        handle = await start_rollout(client, task_queue, spec)
        await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
        subprocess.run(["chattr", "+i", str(routes_dir)], check=True)  # immutable: even root may not write
        try:
            await handle.execute_update("approve", {"by": "alice"})
            status = await wait_for_status(
                handle, lambda s: s["eventCounts"].get("rollbackRetrying", 0) >= 1, timeout=60
            )
            assert status["phase"] == "RollingBack" and status["errorType"] == "RouteNotWritable"
            assert "RouteNotWritable" in status["message"] and "trying again" in status["message"]
            assert weights(plane) == {STABLE: 80, CANARY: 20}
        finally:
            subprocess.run(["chattr", "-i", str(routes_dir)], check=True)
        error = await asyncio.wait_for(failure_of(handle), timeout=90)
    assert error.type == "RouteNotWritable" and "cannot write in" in error.message
    assert weights(plane) == {STABLE: 100, CANARY: 0}


async def test_a_retried_change_that_finds_its_own_target_succeeds(plane: DataPlane) -> None:
    """The worker died after writing, or Envoy's admin did not confirm in time: the retry finds
    the route already where this change takes it. That is success, not drift."""
    router = EnvoyRouterSpec(
        kind="envoy", routes_file=str(plane.envoy.routes_file), route_config="reviews", admin=plane.admin_url
    )
    change = SetWeightsInput(
        router=router,
        namespace="default",
        stable=Destination(host=STABLE),
        canary=Destination(host=CANARY),
        weights=Weights(stable=70, canary=30),
        expected=Weights(stable=100, canary=0),
    )
    env = ActivityEnvironment()
    with using_policy(managing(plane)):
        await env.run(set_weights, change)  # the first attempt lands
        again = await env.run(set_weights, change)  # its retry
    assert (again.stable, again.canary) == (70, 30) and weights(plane) == {STABLE: 70, CANARY: 30}

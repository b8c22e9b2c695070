"""Faults in the data plane and on the worker, through real parts: Envoy serving the two demo
backends, its RDS file edited by the real activities, a real dev server."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.policy import using_policy
from activities.routes import set_weights
from sluice.stack import CANARY, STABLE, DataPlane, sample_versions, wait_applied
from tests.support.binaries import require_binary
from tests.support.e2e import rds_weights
from tests.support.planes import envoy_rollout_spec, managing
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from worker.main import build_worker
from workflows.models import SetWeightsInput, Weights
from workflows.spec import Destination, EnvoyRouterSpec


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[DataPlane]:
    require_binary("envoy")
    with DataPlane(tmp_path / "plane") as running:
        yield running


def weights(plane: DataPlane) -> dict[str, int]:
    return rds_weights(plane.envoy.routes_file)


async def test_canary_down_during_verification_fails_it_and_restores_stable(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    plane.backend(CANARY).stop()
    verify = {"url": plane.url, "header": "x-version", "samples": 100, "alpha": 1e-6}
    spec = envoy_rollout_spec(plane, [{"setWeight": 50}, {"approval": {}}], verify=verify)
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
    spec = envoy_rollout_spec(plane, [{"setWeight": 20}, {"approval": {}}, {"setWeight": 60}])
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


async def test_a_file_envoy_rejects_rolls_the_rollout_back_at_once(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    """The canary is a cluster Envoy does not know and the route config sets validate_clusters:
    Envoy rejects the new file. The change fails with RouteRejected (not retried ten times),
    the previous file is back, and the rollback to 100% stable succeeds."""
    routes_file = plane.envoy.routes_file
    document = yaml.safe_load(routes_file.read_text())
    document["resources"][0]["validate_clusters"] = True
    document["version_info"] = "validating"
    temp = routes_file.with_name(".validating.tmp")
    temp.write_text(yaml.safe_dump(document, sort_keys=False))
    os.replace(temp, routes_file)
    wait_applied(plane.admin_url, "validating")
    original = routes_file.read_text()

    spec = envoy_rollout_spec(plane, [{"setWeight": 20}, {"approval": {}}])
    spec["canary"] = {"host": "reviews-v9"}
    async with build_worker(client, task_queue, managing(plane)):
        handle = await start_rollout(client, task_queue, spec)
        error = await asyncio.wait_for(failure_of(handle), timeout=30)
        status = await handle.query("status")
    assert error.type == "RouteRejected" and "reviews-v9" in error.message, error.message
    assert status["phase"] == "RolledBack" and status["errorType"] == "RouteRejected"
    assert status["eventCounts"].get("rollbackRetrying", 0) == 0
    assert routes_file.read_text() == original
    assert set(sample_versions(plane.url, 50)) == {STABLE}

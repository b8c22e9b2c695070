"""A canary that is ready before it gets traffic: through a real Envoy actively health-checking
the canary cluster, and through the Kubernetes API emulator's Deployments, on a real dev server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.policy import WorkerPolicy
from sluice.stack import CANARY, STABLE, Backend, DataPlane
from tests.support.binaries import require_binary
from tests.support.e2e import rds_weights
from tests.support.kube_emulator import DEPLOYMENT, KubeEmulator
from tests.support.kube_fixtures import kube
from tests.support.planes import envoy_rollout_spec
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from tests.workflows.test_rollout_kubernetes import istio_spec, seed_istio, vs_weights
from worker.main import build_worker
from workflows.spec import SpecError, validate_spec

__all__ = ["kube"]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[DataPlane]:
    require_binary("envoy")
    with DataPlane(tmp_path / "plane", health_checked=[CANARY]) as running:
        yield running


def envoy_spec(plane: DataPlane, steps: list[dict[str, Any]], **canary: Any) -> dict[str, Any]:
    """The plane's rollout spec with a canary whose health Envoy is asked about."""
    spec = envoy_rollout_spec(plane, steps)
    spec["canary"] = {**spec["canary"], "waitHealthy": True, **canary}
    return spec


def wait_unhealthy(plane: DataPlane) -> None:
    """Until Envoy's health checks have marked the stopped canary's host unhealthy."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        clusters = httpx.get(f"{plane.admin_url}/clusters", params={"format": "json"}).json()
        canary = next(c for c in clusters["cluster_statuses"] if c["name"] == CANARY)
        if canary["host_statuses"][0]["health_status"].get("failed_active_health_check"):
            return
        time.sleep(0.1)
    raise AssertionError("Envoy never marked the canary unhealthy")


def waiting_for_ready(status: dict[str, Any]) -> bool:
    return (status["waitingFor"] or {}).get("kind") == "ready"


async def test_envoy_canary_gets_traffic_only_once_its_hosts_are_healthy(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    port = plane.backend(CANARY).port
    plane.backend(CANARY).stop()  # the canary's pods are not up yet
    wait_unhealthy(plane)
    policy = WorkerPolicy(routes_dirs=(plane.envoy.routes_file.parent,))
    async with build_worker(client, task_queue, policy):
        handle = await start_rollout(client, task_queue, envoy_spec(plane, [{"setWeight": 30}]))
        status = await wait_for_status(handle, waiting_for_ready, timeout=20)
        assert "0 of 1 hosts healthy" in status["waitingFor"]["reason"]
        assert status["phase"] == "Progressing" and status["weights"] == {"stable": 100, "canary": 0}
        assert rds_weights(plane.envoy.routes_file) == {STABLE: 100, CANARY: 0}
        revived = Backend(CANARY, port).start()  # the pods come up
        try:
            summary = await asyncio.wait_for(handle.result(), timeout=30)
        finally:
            revived.stop()
    ready = next(e for e in summary["events"] if e["event"] == "canaryReady")
    assert "1 of 1 hosts healthy" in ready["detail"]["reason"]
    assert summary["phase"] == "Succeeded" and rds_weights(plane.envoy.routes_file) == {
        STABLE: 70,
        CANARY: 30,
    }


async def test_a_canary_never_ready_ends_canary_not_ready_with_no_canary_traffic(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    plane.backend(CANARY).stop()
    wait_unhealthy(plane)
    policy = WorkerPolicy(routes_dirs=(plane.envoy.routes_file.parent,))
    async with build_worker(client, task_queue, policy):
        spec = envoy_spec(plane, [{"setWeight": 30}], readyTimeout="4s")
        handle = await start_rollout(client, task_queue, spec)
        error = await asyncio.wait_for(failure_of(handle), timeout=30)
        status = await handle.query("status")
    assert error.type == "CanaryNotReady" and "not ready within 4s" in error.message
    assert "0 of 1 hosts healthy" in error.message
    assert all(e["detail"].get("canary", 0) == 0 for e in status["events"] if e["event"] == "weightsSet")
    assert rds_weights(plane.envoy.routes_file) == {STABLE: 100, CANARY: 0}


async def test_kubernetes_canary_deployment_must_be_rolled_out_and_available(
    client: Client, task_queue: str, kube: KubeEmulator
) -> None:
    seed_istio(kube)
    rolling = {"replicas": 3, "updatedReplicas": 1, "availableReplicas": 1, "observedGeneration": 1}
    deployment = {
        "metadata": {"name": "reviews-v2", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "reviews", "version": "v2"}},
            "template": {
                "metadata": {"labels": {"app": "reviews", "version": "v2"}},
                "spec": {"containers": [{"name": "reviews", "image": "reviews:v2"}]},
            },
        },
        "status": rolling,
    }
    kube.seed(DEPLOYMENT, deployment)
    spec = istio_spec([{"setWeight": 10}, {"approval": {}}])
    spec["canary"] = {**spec["canary"], "deployment": "reviews-v2"}
    async with build_worker(client, task_queue):
        handle = await start_rollout(client, task_queue, spec)
        status = await wait_for_status(handle, waiting_for_ready)
        assert "1 of 3 pods updated, 1 available" in status["waitingFor"]["reason"]
        assert vs_weights(kube) == [("reviews-v1", 100), ("reviews-v2", 0)]
        done = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3}
        available = [{"type": "Available", "status": "True"}]
        kube.seed(
            DEPLOYMENT, {**deployment, "status": {**done, "observedGeneration": 1, "conditions": available}}
        )
        status = await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval", timeout=20)
        assert vs_weights(kube) == [("reviews-v1", 90), ("reviews-v2", 10)]
        await handle.execute_update("abort", {"by": "alice"})
        assert (await failure_of(handle)).type == "RolloutAborted"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"stable": {"host": "reviews-v1", "deployment": "reviews-v1"}},
            "stable.deployment: only the canary",
        ),
        ({"stable": {"host": "reviews-v1", "readyTimeout": "1m"}}, "stable.readyTimeout: only the canary"),
        (
            {"canary": {"host": "reviews-v2", "deployment": "reviews-v2"}},
            "canary.deployment: only the istio or gatewayApi router checks a Deployment",
        ),
        (
            {"canary": {"host": "reviews-v2", "readyTimeout": "1m"}},
            "canary.readyTimeout: nothing to wait for",
        ),
    ],
)
def test_readiness_keys_are_refused_where_they_cannot_work(change: dict[str, Any], problem: str) -> None:
    spec = {"service": "reviews", "router": {"kind": "dryRun"}, "stable": {"host": "reviews-v1"}}
    spec |= {"canary": {"host": "reviews-v2"}} | change
    with pytest.raises(SpecError) as refused:
        validate_spec(spec)
    assert any(problem in line for line in refused.value.problems), refused.value.problems

"""Whole Rollout workflows on a real Temporal dev server against the Kubernetes API emulator.

The worker finds the "cluster" only through ``KUBECONFIG`` (set by the ``kube`` fixture), as a
worker outside a Pod would. Every object written is validated against the upstream CRD schema.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client
from temporalio.worker import Worker

from tests.support.kube_emulator import (
    DEPLOYMENT,
    GATEWAY_HTTP_ROUTE,
    ISTIO_DESTINATION_RULE,
    ISTIO_VIRTUAL_SERVICE,
    KubeEmulator,
)
from tests.support.kube_fixtures import kube, schema_errors
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from tests.support.route_activities import upstream
from worker.main import build_worker

__all__ = ["kube"]

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    return data


@pytest.fixture
async def worker(client: Client, task_queue: str, kube: KubeEmulator) -> AsyncIterator[Worker]:
    async with build_worker(client, task_queue) as running:
        yield running


def seed_istio(kube: KubeEmulator, replicas: int = 3) -> dict[str, Any]:
    vs = example("bookinfo-reviews-virtualservice.yaml")
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    kube.seed(
        DEPLOYMENT,
        {"metadata": {"name": "reviews-v1", "namespace": "default"}, "spec": {"replicas": replicas}},
    )
    return vs


def istio_spec(steps: list[dict[str, Any]]) -> dict[str, Any]:
    spec = example("rollout-reviews-istio.yaml")
    spec.pop("verify", None)  # no productpage here: the weights are read back from the API instead
    spec["steps"] = steps
    return spec


def vs_weights(kube: KubeEmulator) -> list[tuple[str, int | None]]:
    vs = kube.stored(ISTIO_VIRTUAL_SERVICE, "default", "reviews")
    assert vs is not None
    assert schema_errors(vs, "istio-virtualservice.json") == []
    route = next(
        r
        for r in vs["spec"]["http"]
        if any(d["destination"]["host"].startswith("reviews") for d in r["route"])
    )
    return [(d["destination"]["host"], d.get("weight")) for d in route["route"]]


async def test_istio_rollout_end_to_end_scales_old_deployment_to_zero(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    original = seed_istio(kube)
    spec = istio_spec([
        {"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100},
        {"removeOld": {"deployment": "reviews-v1", "delay": "1s"}},
    ])  # fmt: skip
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")
    assert vs_weights(kube) == [("reviews-v1", 90), ("reviews-v2", 10)]
    status = await handle.query("status")
    assert status["originalRoute"]["stable"] == 90 and status["originalRoute"]["canary"] == 10

    await handle.execute_update("approve", {"by": "alice", "step": 2})
    await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval" and s["currentStep"] == 4)
    assert vs_weights(kube) == [("reviews-v1", 50), ("reviews-v2", 50)]
    await handle.execute_update("approve", {"by": "bob", "step": 4})

    summary = await handle.result()
    assert summary["phase"] == "Succeeded"
    assert vs_weights(kube) == [("reviews-v2", 100)]
    deployment = kube.stored(DEPLOYMENT, "default", "reviews-v1")
    assert deployment is not None and deployment["spec"]["replicas"] == 0
    assert summary["oldWorkload"]["action"] == "scaleToZero"
    # Nothing but the route's destinations changed.
    final = kube.stored(ISTIO_VIRTUAL_SERVICE, "default", "reviews")
    assert final is not None
    assert final["spec"]["hosts"] == original["spec"]["hosts"]
    assert len(final["spec"]["http"]) == len(original["spec"]["http"])


async def test_gateway_api_rollout_end_to_end(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, example("bookinfo-reviews-httproute.yaml"))
    kube.seed(
        DEPLOYMENT, {"metadata": {"name": "reviews-v1", "namespace": "default"}, "spec": {"replicas": 2}}
    )
    spec = example("rollout-reviews-gateway-api.yaml")
    spec.pop("verify", None)
    spec["steps"] = [
        {"setWeight": 10},
        {"setWeight": 50},
        {"setWeight": 100},
        {"removeOld": {"deployment": "reviews-v1", "delay": "1s"}},
    ]
    summary = await (await start_rollout(client, task_queue, spec)).result()
    assert summary["phase"] == "Succeeded"
    route = kube.stored(GATEWAY_HTTP_ROUTE, "default", "reviews")
    assert route is not None and schema_errors(route, "gateway-httproute.json") == []
    assert [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]] == [
        ("reviews-v2", 100)
    ]
    deployment = kube.stored(DEPLOYMENT, "default", "reviews-v1")
    assert deployment is not None and deployment["spec"]["replicas"] == 0
    assert [e["detail"]["canary"] for e in summary["events"] if e["event"] == "weightsSet"] == [
        0,
        10,
        50,
        100,
    ]


async def test_conflict_and_server_errors_are_retried(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    seed_istio(kube)
    kube.fail("put", ISTIO_VIRTUAL_SERVICE, 409, name="reviews")
    kube.fail("put", ISTIO_VIRTUAL_SERVICE, 500, name="reviews", times=2)
    summary = await (
        await start_rollout(client, task_queue, istio_spec([{"setWeight": 30}, {"setWeight": 100}]))
    ).result()
    assert summary["phase"] == "Succeeded"
    assert vs_weights(kube) == [("reviews-v1", 0), ("reviews-v2", 100)]


async def test_missing_virtual_service_fails_without_touching_anything(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    error = await failure_of(await start_rollout(client, task_queue, istio_spec([{"setWeight": 10}])))
    assert error.type == "RouteNotFound" and "reviews" in error.message
    assert "no traffic had been changed" in error.message


async def test_forbidden_write_fails_and_leaves_stable(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    seed_istio(kube)
    handle = await start_rollout(client, task_queue, istio_spec([{"pause": {}}, {"setWeight": 10}]))
    await wait_for_status(handle, lambda s: s["phase"] == "Paused")
    assert vs_weights(kube) == [("reviews-v1", 100), ("reviews-v2", 0)]
    # The Role lost "update" (kmock counts a limit from the first request ever, so forbid for good):
    # the rollback finds the route at 100/0 already and has nothing to write.
    kube.forbid("update", ISTIO_VIRTUAL_SERVICE, name="reviews")
    await handle.execute_update("resume", {"by": "alice"})
    error = await failure_of(handle)
    assert error.type == "Forbidden"
    assert "update" in error.message and "virtualservices" in error.message
    assert (await handle.query("status"))["phase"] == "RolledBack"
    assert vs_weights(kube) == [("reviews-v1", 100), ("reviews-v2", 0)]


@pytest.mark.parametrize("then", ["resume", "abort"])
async def test_hand_edit_between_steps_pauses_instead_of_overwriting(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker, then: str
) -> None:
    seed_istio(kube)
    handle = await start_rollout(
        client, task_queue, istio_spec([{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}])
    )
    await wait_for_status(handle, lambda s: s["phase"] == "WaitingForApproval")

    def gitops_revert(vs: dict[str, Any]) -> None:
        route = vs["spec"]["http"][0]["route"]
        route[0]["weight"], route[1]["weight"] = 70, 30

    kube.edit(ISTIO_VIRTUAL_SERVICE, "default", "reviews", gitops_revert)
    before = copy.deepcopy(kube.stored(ISTIO_VIRTUAL_SERVICE, "default", "reviews"))
    await handle.execute_update("approve", {"by": "alice"})
    status = await wait_for_status(handle, lambda s: s["phase"] == "Paused")
    assert status["paused"]["by"] == "sluicegate" and "drift" in status["paused"]["reason"]
    assert (status["drift"]["stable"], status["drift"]["canary"]) == (70, 30)
    assert kube.stored(ISTIO_VIRTUAL_SERVICE, "default", "reviews") == before  # not overwritten

    if then == "resume":
        await handle.execute_update("resume", {"by": "alice", "comment": "re-apply"})
        summary = await handle.result()
        assert summary["phase"] == "Succeeded"
        assert vs_weights(kube) == [("reviews-v1", 50), ("reviews-v2", 50)]
        assert any(e["event"] == "driftDetected" for e in summary["events"])
    else:
        await handle.execute_update("abort", {"by": "alice", "reason": "someone reverted"})
        error = await failure_of(handle)
        assert error.type == "RolloutAborted"
        assert vs_weights(kube) == [("reviews-v1", 100), ("reviews-v2", 0)]


async def test_a_router_warning_is_kept_in_status(
    client: Client, task_queue: str, kube: KubeEmulator, worker: Worker
) -> None:
    """Istio's mirroring task mirrors every request to v2; rolling v1 → v2 goes on, and says so."""
    kube.seed(ISTIO_VIRTUAL_SERVICE, upstream("istio-mirroring-httpbin.yaml", "VirtualService"))
    kube.seed(ISTIO_DESTINATION_RULE, upstream("istio-mirroring-httpbin.yaml", "DestinationRule"))
    spec = {
        "service": "httpbin",
        "router": {"kind": "istio", "virtualService": "httpbin"},
        "stable": {"host": "httpbin", "subset": "v1"},
        "canary": {"host": "httpbin", "subset": "v2"},
        "steps": [{"setWeight": 20}],
    }
    summary = await (await start_rollout(client, task_queue, spec)).result()
    assert summary["phase"] == "Succeeded"
    assert len(summary["warnings"]) == 1  # read at step 0 and after each change: kept once
    assert summary["warnings"][0].startswith("http route 0 mirrors 100% of its requests to httpbin/v2")

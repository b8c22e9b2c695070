"""The ``sequential`` metric in whole rollouts through real parts: Envoy serving reviews-v1 and
reviews-v2 under a steady load, a real Prometheus scraping Envoy's counters, the real worker.

Both versions fail at random (``Fault(error_rate=...)``, independent per request), as in
production. ``alpha`` is 0.001 for the healthy rollout, so it is failed by chance with probability
at most 0.1% (Ville's inequality, whatever the number of measurements).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from sluice.stack import CANARY, STABLE, DataPlane, Fault, sample_versions
from tests.support.binaries import require_binary
from tests.support.planes import managing
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from worker.main import build_worker

BASE_ERROR_RATE = 0.01
ERRORS = (
    'sum(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{destination}}",envoy_response_code_class="5"})'
    " or vector(0)"
)
REQUESTS = 'sum(envoy_cluster_upstream_rq_completed{envoy_cluster_name="{{destination}}"})'


@pytest.fixture(scope="module")
def shared_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DataPlane]:
    """One plane for the module: Prometheus takes about 5 s to its first scrape. The metric
    counts from its own first reading, so what an earlier test sent does not count."""
    require_binary("envoy")
    require_binary("prometheus")
    with DataPlane(
        tmp_path_factory.mktemp("sequential"), with_prometheus=True, load_per_second=60
    ) as running:
        yield running


@pytest.fixture
def plane(shared_plane: DataPlane) -> DataPlane:
    """The starting route (100% stable, served), both versions failing 1% of requests at random."""
    shared_plane.reset()
    for name in (STABLE, CANARY):
        shared_plane.backend(name).set_fault(Fault(error_rate=BASE_ERROR_RATE))
    return shared_plane


@pytest.fixture
async def worker(client: Client, task_queue: str, plane: DataPlane) -> AsyncIterator[Worker]:
    async with build_worker(client, task_queue, managing(plane)) as running:
        yield running


def rollout_spec(
    plane: DataPlane, steps: list[dict[str, Any]], bake: str = "0s", alpha: float = 0.001
) -> dict[str, Any]:
    queries = {"errors": ERRORS, "requests": REQUESTS}
    metric = {
        "name": "errors-vs-stable",
        "sequential": {
            "prometheus": {"address": plane.prometheus.url},
            "canary": queries,
            "stable": queries,
            "alpha": alpha,
        },
    }
    return {
        "service": f"reviews-{uuid.uuid4().hex[:6]}",
        "router": {
            "kind": "envoy",
            "routesFile": str(plane.envoy.routes_file),
            "routeConfig": "reviews",
            "admin": plane.admin_url,
        },
        "stable": {"host": STABLE},
        "canary": {"host": CANARY},
        "steps": steps,
        "analysis": {"interval": "1s", "bake": bake, "metrics": [metric]},
    }


async def test_five_more_points_of_errors_roll_back_during_a_gate(
    client: Client, task_queue: str, worker: Worker, plane: DataPlane
) -> None:
    plane.backend(CANARY).set_fault(Fault(error_rate=BASE_ERROR_RATE + 0.05))
    # alpha 0.01 (the healthy test keeps 0.001): the same detection on less evidence
    steps: list[dict[str, Any]] = [{"setWeight": 50}, {"approval": {}}, {"setWeight": 100}]
    handle = await start_rollout(client, task_queue, rollout_spec(plane, steps, alpha=0.01))
    error = await failure_of(handle)
    assert error.type == "AnalysisFailed"
    assert "errors-vs-stable" in error.message and "reached 100 (1/alpha)" in error.message
    status = await handle.query("status")
    assert status["phase"] == "RolledBack" and status["approvals"] == []
    assert max(e["detail"]["canary"] for e in status["events"] if e["event"] == "weightsSet") == 50
    (metric,) = status["analysis"]
    evidence = metric["measurements"][-1]["sequential"]
    assert evidence["eValue"] >= 100 and evidence["threshold"] == 100
    assert evidence["canaryErrors"] / evidence["canaryRequests"] > evidence["stableErrors"] / max(
        evidence["stableRequests"], 1
    )
    # back to 100% stable (whose own 1% of errors answer 503)
    served = sample_versions(plane.url, 50)
    assert set(served) <= {STABLE, "<503>"} and served[STABLE] > 0


async def test_a_healthy_canary_at_the_same_error_rate_is_promoted(
    client: Client, task_queue: str, worker: Worker, plane: DataPlane
) -> None:
    spec = rollout_spec(plane, [{"setWeight": 20}, {"setWeight": 50}, {"setWeight": 100}], bake="5s")
    handle = await start_rollout(client, task_queue, spec)
    # the evidence is measured while the canary serves: some intervals counted, with requests
    status = await wait_for_status(
        handle,
        lambda s: (
            bool(s["analysis"])
            and any(
                (m.get("sequential") or {}).get("intervals", 0) >= 3 for m in s["analysis"][0]["measurements"]
            )
        ),
    )
    summary = await handle.result()
    assert summary["phase"] == "Succeeded"
    (metric,) = summary["analysis"]
    assert metric["failed"] == 0 and metric["successful"] >= 3
    evidence = metric["measurements"][-1]["sequential"]
    assert evidence["canaryRequests"] > 0 and evidence["stableRequests"] > 0
    assert evidence["eValue"] < 1000
    assert status["analysis"][0]["name"] == "errors-vs-stable"

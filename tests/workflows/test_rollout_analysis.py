"""Metric analysis in whole rollouts, through real parts: Envoy serving the demo backends under a
small load, a real Prometheus scraping Envoy's /stats/prometheus, the real worker activities."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.policy import WorkerPolicy
from sluice.stack import CANARY, DataPlane, Fault, sample_versions
from tests.support.binaries import require_binary
from tests.support.rollouts import failure_of, start_rollout, wait_for_status
from worker.main import build_worker

# Reads 0 for a healthy canary (Envoy has no 5xx series before the first 5xx) and has no data
# only when the canary gets no traffic at all.
ERROR_RATIO = (
    '(sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{c}",envoy_response_code_class="5"}}[5s]))'
    ' or vector(0)) / (sum(rate(envoy_cluster_upstream_rq_completed{{envoy_cluster_name="{c}"}}[5s])) > 0)'
)


class Plane(DataPlane):
    """Envoy in front of reviews-v1/reviews-v2, a load through it, Prometheus scraping it."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, with_prometheus=True, load_per_second=50)
        self.canary = self.backends[CANARY]

    def served(self, count: int = 100) -> Counter[str]:
        return sample_versions(self.url, count)

    def spec(self, steps: list[dict[str, Any]], metric: dict[str, Any], bake: str = "0s") -> dict[str, Any]:
        return {
            "service": f"reviews-{uuid.uuid4().hex[:6]}",
            "router": {
                "kind": "envoy",
                "routesFile": str(self.envoy.routes_file),
                "routeConfig": "reviews",
                "admin": self.envoy.admin_url,
            },
            "stable": {"host": "reviews-v1"},
            "canary": {"host": "reviews-v2"},
            "steps": steps,
            "analysis": {"interval": "1s", "bake": bake, "metrics": [metric]},
        }

    def error_rate(self, **limits: Any) -> dict[str, Any]:
        return {
            "name": "error-rate",
            "prometheus": {"address": self.prometheus.url, "query": ERROR_RATIO.format(c="reviews-v2")},
            "max": 0.05,
            # The first intervals after a shift have no canary data yet (Prometheus scrapes every
            # second over a 5s window): tolerate them instead of pausing for a person.
            "inconclusiveLimit": 10,
            **limits,
        }


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    require_binary("envoy")
    require_binary("prometheus")
    with Plane(tmp_path) as running:
        yield running


@pytest.fixture
async def worker(client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Worker]:
    # the plane's routes file lies under tmp_path
    async with build_worker(client, task_queue, WorkerPolicy(routes_dirs=(tmp_path,))) as running:
        yield running


async def test_healthy_canary_passes_every_step(
    client: Client, task_queue: str, worker: Worker, plane: Plane
) -> None:
    spec = plane.spec(
        [{"setWeight": 20}, {"setWeight": 50}, {"setWeight": 100}], plane.error_rate(), bake="3s"
    )
    summary = await (await start_rollout(client, task_queue, spec)).result()
    assert summary["phase"] == "Succeeded"
    (metric,) = summary["analysis"]
    assert metric["name"] == "error-rate" and metric["failed"] == 0
    assert metric["successful"] >= 3, metric  # bakes of 3s at each weight, measured every 1s
    assert all(m["value"] == 0 for m in metric["measurements"] if m["verdict"] == "Successful")


async def test_bad_canary_rolls_back_at_the_first_weight_without_waiting_for_approval(
    client: Client, task_queue: str, worker: Worker, plane: Plane
) -> None:
    plane.canary.set_fault(Fault(error_rate=0.2))
    spec = plane.spec(
        [{"setWeight": 20}, {"approval": {}}, {"setWeight": 50}, {"approval": {}}, {"setWeight": 100}],
        plane.error_rate(),
    )
    handle = await start_rollout(client, task_queue, spec)
    error = await failure_of(handle)
    assert error.type == "AnalysisFailed"
    assert "error-rate" in error.message and "0.05" in error.message
    status = await handle.query("status")
    assert status["phase"] == "RolledBack" and status["approvals"] == []
    assert max(e["detail"]["canary"] for e in status["events"] if e["event"] == "weightsSet") == 20
    assert plane.served(100) == Counter({"reviews-v1": 100})


async def test_prometheus_gone_counts_errors_then_fails(
    client: Client, task_queue: str, worker: Worker, plane: Plane
) -> None:
    spec = plane.spec(
        [{"setWeight": 20}, {"approval": {}}, {"setWeight": 100}], plane.error_rate(consecutiveErrorLimit=2)
    )
    handle = await start_rollout(client, task_queue, spec)
    await wait_for_status(handle, lambda s: bool(s["analysis"]) and s["analysis"][0]["successful"] >= 1)
    plane.prometheus.stop()
    error = await failure_of(handle)
    assert error.type == "AnalysisFailed" and "consecutiveErrorLimit" in error.message
    status = await handle.query("status")
    assert status["analysis"][0]["error"] >= 3
    assert plane.served(100) == Counter({"reviews-v1": 100})


async def test_no_data_is_inconclusive_and_pauses_for_a_person(
    client: Client, task_queue: str, worker: Worker, plane: Plane
) -> None:
    metric = {
        "name": "no-such-series",
        "prometheus": {"address": plane.prometheus.url, "query": "sum(rate(sluice_no_such_metric[1m]))"},
        "max": 1,
    }
    spec = plane.spec([{"setWeight": 20}, {"setWeight": 50}], metric, bake="2s")
    handle = await start_rollout(client, task_queue, spec)
    status = await wait_for_status(handle, lambda s: s["phase"] == "Paused")
    assert status["paused"]["by"] == "analysis" and "no-such-series" in status["paused"]["reason"]
    assert status["weights"] == {"stable": 80, "canary": 20}
    assert status["analysis"][0]["inconclusive"] >= 1
    await handle.execute_update("abort", {"by": "alice", "reason": "no metrics"})
    assert (await failure_of(handle)).type == "RolloutAborted"
    assert plane.served(50) == Counter({"reviews-v1": 50})

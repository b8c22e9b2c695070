"""Whole rollouts on the dev server over Envoy route shapes from Envoy's docs: the
``runtime_fraction`` traffic shift is driven by its fraction, verified by sampling what Envoy
serves at every step, and one whose fraction Envoy's runtime overrides is refused at step 0
without touching traffic."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.client import Client

from sluice.stack import CANARY, STABLE, DataPlane, sample_versions, wait_applied
from tests.support.binaries import require_binary
from tests.support.planes import envoy_rollout_spec, managing
from tests.support.rollouts import failure_of, start_rollout
from worker.main import build_worker

RUNTIME_KEY = "routing.traffic_shift.helloworld"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[DataPlane]:
    """The demo plane, its route replaced by the docs' shift (helloworld_v1/_v2: stable/canary)."""
    require_binary("envoy")
    with DataPlane(tmp_path / "plane") as running:
        fraction = {"default_value": {"numerator": 50, "denominator": "HUNDRED"}, "runtime_key": RUNTIME_KEY}
        routes = [
            {"match": {"prefix": "/", "runtime_fraction": fraction}, "route": {"cluster": STABLE}},
            {"match": {"prefix": "/"}, "route": {"cluster": CANARY}},
        ]
        path = running.envoy.routes_file
        document = yaml.safe_load(path.read_text())
        document["resources"][0]["virtual_hosts"][0]["routes"] = routes
        document["version_info"] = "docs-shift"
        temp = path.with_name(".docs.tmp")
        temp.write_text(yaml.safe_dump(document, sort_keys=False))
        os.replace(temp, path)
        wait_applied(running.admin_url, "docs-shift")
        yield running


def verify(plane: DataPlane) -> dict[str, Any]:
    return {"url": plane.url, "header": "x-version", "samples": 300, "alpha": 1e-6}


def first_route_numerator(plane: DataPlane) -> int:
    document = yaml.safe_load(plane.envoy.routes_file.read_text())
    route = document["resources"][0]["virtual_hosts"][0]["routes"][0]
    return int(route["match"]["runtime_fraction"]["default_value"].get("numerator", 0))


async def test_a_rollout_over_the_docs_traffic_shift_serves_every_step(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    steps: list[dict[str, Any]] = [{"setWeight": 30}, {"setWeight": 100}, {"removeOld": {}}]
    spec = envoy_rollout_spec(plane, steps, verify=verify(plane))
    async with build_worker(client, task_queue, managing(plane)):
        handle = await start_rollout(client, task_queue, spec)
        result = await asyncio.wait_for(handle.result(), timeout=90)
    assert result["phase"] == "Succeeded", result["message"]
    assert result["originalRoute"]["stable"] == 50 and result["originalRoute"]["canary"] == 50
    checks = [(v["result"]["expected"], v["result"]["passed"]) for v in result["verifications"]]
    assert checks == [
        ({"stable": 100, "canary": 0}, True),
        ({"stable": 70, "canary": 30}, True),
        ({"stable": 0, "canary": 100}, True),
        ({"stable": 0, "canary": 100}, True),
    ], checks
    assert first_route_numerator(plane) == 0  # the stable route takes nothing
    assert set(sample_versions(plane.url, 50)) == {CANARY}


async def test_a_shift_whose_fraction_envoy_runtime_overrides_fails_at_step_0_untouched(
    client: Client, task_queue: str, plane: DataPlane
) -> None:
    httpx.post(f"{plane.admin_url}/runtime_modify", params={RUNTIME_KEY: "80"}, timeout=5).raise_for_status()
    original = plane.envoy.routes_file.read_text()
    spec = envoy_rollout_spec(plane, [{"setWeight": 30}])
    async with build_worker(client, task_queue, managing(plane)):
        handle = await start_rollout(client, task_queue, spec)
        error = await asyncio.wait_for(failure_of(handle), timeout=30)
        status = await handle.query("status")
    assert error.type == "RouteInvalid" and RUNTIME_KEY in error.message, error.message
    assert status["phase"] == "Failed" and "no traffic had been changed" in status["message"]
    assert plane.envoy.routes_file.read_text() == original

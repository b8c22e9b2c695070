"""Provider state carried through the workflow's models, including payloads recorded before it was
opaque: histories hold ``MeasureResult`` with ``envoySnapshots``, and continue-as-new checkpoints
``AnalysisState`` with ``envoySnapshots``. Those must still load, and the snapshot in them must
still be the Envoy provider's baseline (against a real Envoy).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.analysis import measure_metrics
from activities.metrics import EnvoyProvider, build_provider
from activities.metrics.envoy import EnvoySnapshot
from sluice.stack import DataPlane
from tests.support.planes import envoy_stack
from workflows.analysis import AnalysisSpec
from workflows.carried import RolloutState
from workflows.judge import apply_measurements
from workflows.measurements import AnalysisState, MeasureInput, MeasureResult

__all__ = ["envoy_stack"]  # a fixture, re-exported for pytest

METRIC = "canary-envoy-errors"
RECORDED = (
    b'{"measurements":[],"envoySnapshots":{"canary-envoy-errors":{"at":"2026-01-02T03:04:05.678901Z",'
    b'"completed":10.0,"errors":1.0,"latencyBuckets":[[25.0,3.0],[50.0,9.0]],"latencyCount":10.0,'
    b'"uptimeSeconds":100.0}}}'
)
"""A ``measure_metrics`` result as the code before opaque provider states put it in histories
(its ``MeasureResult`` through ``pydantic_data_converter``, byte for byte)."""


def analysis(admin: str) -> AnalysisSpec:
    # window 1s: without a usable baseline the provider would read twice a second apart, see no
    # request in between and answer None, so a value proves the carried baseline was used
    envoy = {"admin": admin, "cluster": "canary", "measure": "errorRate", "window": "1s"}
    return AnalysisSpec.model_validate({"metrics": [{"name": METRIC, "envoy": envoy, "max": 0.05}]})


def test_a_recorded_old_result_decodes_and_its_snapshot_becomes_the_envoy_baseline() -> None:
    converter = pydantic_data_converter.payload_converter
    spec = analysis("http://127.0.0.1:9901")
    recorded = Payload(metadata={"encoding": b"json/plain"}, data=RECORDED)
    (result,) = converter.from_payloads([recorded], [MeasureResult])
    state = apply_measurements(spec, AnalysisState(), result)
    # the call workflows/rollout.py makes, and the request as the activity's worker decodes it
    sent = MeasureInput(metrics=spec.metrics, stable="s", canary="c", provider_states=state.provider_states)
    (request,) = converter.from_payloads(converter.to_payloads([sent]), [MeasureInput])
    assert spec.metrics[0].envoy is not None
    provider = build_provider(spec.metrics[0].envoy, carried_state=request.provider_states.get(METRIC))
    assert isinstance(provider, EnvoyProvider)
    assert provider.baseline == EnvoySnapshot(
        at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        completed=10,
        errors=1,
        latency_buckets=[(25, 3), (50, 9)],
        latency_count=10,
        uptime_seconds=100,
    )


def old_snapshot_json(snapshot: EnvoySnapshot) -> dict[str, Any]:
    """A snapshot as the code before opaque provider states wrote it into histories."""
    return {
        "at": snapshot.at.isoformat().replace("+00:00", "Z"),
        "completed": snapshot.completed,
        "errors": snapshot.errors,
        "latencyBuckets": [list(bucket) for bucket in snapshot.latency_buckets],
        "latencyCount": snapshot.latency_count,
        "uptimeSeconds": snapshot.uptime_seconds,
    }


async def test_old_envoy_snapshots_payloads_still_carry_the_baseline(envoy_stack: DataPlane) -> None:
    spec = analysis(envoy_stack.admin_url)
    source = spec.metrics[0].envoy
    assert source is not None
    envoy_stack.backend("canary").fault.error_rate = 0.2
    envoy_stack.send("canary", 10)  # before the baseline: must not count
    baseline = await EnvoyProvider(source).read()
    old = {METRIC: old_snapshot_json(baseline)}

    # a measure_metrics result recorded in an old history, folded as the workflow folds it
    recorded = json.dumps({"measurements": [], "envoySnapshots": old})
    state = apply_measurements(spec, AnalysisState(), MeasureResult.model_validate_json(recorded))
    assert state.provider_states == old

    # an old continue-as-new checkpoint carries the same snapshot in its AnalysisState
    status = {"rolloutId": "rollout-default-reviews", "service": "reviews", "namespace": "default"}
    analysis_state = {"metrics": {}, "envoySnapshots": old, "rounds": 4}
    checkpoint = json.dumps(
        {"status": status, "analysisState": analysis_state, "analysisHold": False, "phaseBeforePause": None}
    )
    carried = RolloutState.model_validate_json(checkpoint).analysis_state
    assert carried.provider_states == old and carried.rounds == 4

    # the call the analysis watch makes with what it carried
    request = MeasureInput(
        metrics=spec.metrics, stable="s", canary="c", provider_states=carried.provider_states
    )
    assert request.provider_states == old
    assert "providerStates" in json.loads(request.model_dump_json())

    assert envoy_stack.send("canary", 50) == {200: 40, 500: 10}
    # an old-shape MeasureInput, as a worker of the old code scheduled it, through the activity
    payload = {"metrics": [m.model_dump(mode="json") for m in spec.metrics], "stable": "s", "canary": "c"}
    request = MeasureInput.model_validate_json(json.dumps({**payload, "envoySnapshots": old}))
    result = await ActivityEnvironment().run(measure_metrics, request)
    result = MeasureResult.model_validate_json(result.model_dump_json())

    # the delta spans exactly the 50 requests since the carried baseline
    assert result.measurements[0].value == pytest.approx(0.2)
    after = EnvoySnapshot.model_validate(result.provider_states[METRIC])
    assert after.completed - baseline.completed == 50
    assert apply_measurements(spec, state, result).provider_states[METRIC] == result.provider_states[METRIC]


async def test_a_state_that_is_not_a_snapshot_is_no_baseline(envoy_stack: DataPlane) -> None:
    source = analysis(envoy_stack.admin_url).metrics[0].envoy
    assert source is not None
    provider = build_provider(source, carried_state={"something": "else"})
    assert isinstance(provider, EnvoyProvider) and provider.baseline is None
    assert provider.carried_state is None  # nothing read yet, nothing to carry
    assert await provider.run_query("errorRate") is None  # read twice, no traffic between
    assert provider.carried_state is not None
    assert EnvoySnapshot.model_validate(provider.carried_state) == provider.snapshot

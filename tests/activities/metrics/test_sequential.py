"""``measure_metrics`` on a ``sequential`` metric: the four counters from a real Envoy (admin, and
through a real Prometheus scraping it), exact request counts sent through Envoy, the test's state
carried from one measurement to the next as the workflow carries it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis import measure_metrics
from sluice.stack import DataPlane
from tests.support.planes import envoy_stack, start_plane
from workflows.analysis import AnalysisSpec
from workflows.judge import apply_measurements
from workflows.measurements import AnalysisState, MeasureInput, Measurement
from workflows.sequential import SequentialState

__all__ = ["envoy_stack"]  # a fixture, re-exported for pytest

ERRORS = (
    'sum(envoy_cluster_upstream_rq_xx{envoy_cluster_name="{{destination}}",envoy_response_code_class="5"})'
)
REQUESTS = 'sum(envoy_cluster_upstream_rq_completed{envoy_cluster_name="{{destination}}"})'


class Measurer:
    """Measures one metric again and again, carrying the state as the analysis watch does."""

    def __init__(self, metric: dict[str, Any]) -> None:
        self.spec = AnalysisSpec.model_validate({"metrics": [{"name": "errors-vs-stable", **metric}]})
        self.state = AnalysisState()

    async def measure(self) -> Measurement:
        request = MeasureInput(
            metrics=self.spec.metrics,
            stable="stable",
            canary="canary",
            provider_states=self.state.provider_states,
        )
        result = await ActivityEnvironment().run(measure_metrics, request)
        self.state = apply_measurements(self.spec, self.state, result)
        (measurement,) = result.measurements
        return measurement


@pytest.fixture
def prometheus_plane(tmp_path: Path) -> Iterator[DataPlane]:
    plane = start_plane(tmp_path, canary_error_rate=0.2, with_prometheus=True)
    try:
        yield plane
    finally:
        plane.stop()


def scraped(plane: DataPlane, cluster: str, completed: int) -> None:
    query = f'sum(envoy_cluster_upstream_rq_completed{{envoy_cluster_name="{cluster}"}}) >= {completed}'
    plane.prometheus.wait_for(query, 30)


async def test_prometheus_counters_count_exactly_the_requests_between_measurements(
    prometheus_plane: DataPlane,
) -> None:
    plane = prometheus_plane
    queries = {"errors": ERRORS + " or vector(0)", "requests": REQUESTS}
    measurer = Measurer(
        {
            "sequential": {
                "prometheus": {"address": plane.prometheus.url},
                "canary": queries,
                "stable": queries,
            }
        }
    )
    plane.send("canary", 50)  # before the baseline: not the canary's
    plane.send("stable", 50)
    scraped(plane, "canary", 50)
    scraped(plane, "stable", 50)
    first = await measurer.measure()
    assert first.verdict == "Successful" and first.sequential is not None
    assert first.sequential.step == "baseline" and first.value == 1.0

    assert plane.send("canary", 100) == {200: 80, 500: 20}
    assert plane.send("stable", 400) == {200: 400}
    scraped(plane, "canary", 150)
    scraped(plane, "stable", 450)
    second = await measurer.measure()
    evidence = second.sequential
    assert evidence is not None and evidence.step == "counted"
    assert (evidence.canary_errors, evidence.canary_requests) == (20, 100)
    assert (evidence.stable_errors, evidence.stable_requests) == (0, 400)
    # 20 errors, all the canary's, on a fifth of the traffic: far beyond 1/alpha
    assert second.verdict == "Failed" and evidence.e_value >= 100
    assert "canary errors 20/100 (20.000%), stable 0/400" in second.message
    state = SequentialState.model_validate(measurer.state.provider_states["errors-vs-stable"])
    assert state.last.canary_requests == 150 and state.rejected


async def test_a_query_without_an_answer_is_no_data_and_one_without_a_counter_an_error(
    prometheus_plane: DataPlane,
) -> None:
    plane = prometheus_plane
    # the stable version never failed: without `or vector(0)` its 5xx counter does not exist
    queries = {"errors": ERRORS, "requests": REQUESTS}
    measurer = Measurer(
        {
            "sequential": {
                "prometheus": {"address": plane.prometheus.url},
                "canary": queries,
                "stable": queries,
            }
        }
    )
    plane.send("canary", 10)
    plane.send("stable", 10)
    scraped(plane, "canary", 10)
    scraped(plane, "stable", 10)
    measured = await measurer.measure()
    assert measured.verdict == "Inconclusive" and measured.sequential is None
    assert "stable.errors" in measured.message and "or vector(0)" in measured.message
    assert measurer.state.provider_states == {}

    # a query that is not a counter (a negative number) is an error, not evidence
    negative = {"errors": "vector(-1)", "requests": REQUESTS}
    measurer.spec = Measurer(
        {
            "sequential": {
                "prometheus": {"address": plane.prometheus.url},
                "canary": negative,
                "stable": queries,
            }
        }
    ).spec
    measured = await measurer.measure()
    assert measured.verdict == "Error" and "canary.errors: -1 is not a counter's value" in measured.message


async def test_an_unreachable_prometheus_is_an_error_and_keeps_the_state(envoy_stack: DataPlane) -> None:
    measurer = Measurer({"sequential": {"envoy": {"admin": envoy_stack.admin_url}}})
    await measurer.measure()
    carried = measurer.state.provider_states["errors-vs-stable"]
    measurer.spec = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "errors-vs-stable",
                    "sequential": {
                        "prometheus": {"address": "http://127.0.0.1:9", "timeout": "1s"},
                        "canary": {"errors": ERRORS, "requests": REQUESTS},
                        "stable": {"errors": ERRORS, "requests": REQUESTS},
                    },
                }
            ]
        }
    )
    measured = await measurer.measure()
    assert measured.verdict == "Error" and "unreachable" in measured.message
    assert measurer.state.provider_states["errors-vs-stable"] == carried


async def test_envoy_admin_counters_of_the_canary_and_stable_clusters(envoy_stack: DataPlane) -> None:
    measurer = Measurer({"sequential": {"envoy": {"admin": envoy_stack.admin_url}, "tolerance": 0}})
    baseline = await measurer.measure()
    assert baseline.sequential is not None and baseline.sequential.step == "baseline"

    # the same error rate on both (every fiftieth request): no evidence against the canary
    envoy_stack.backend("canary").fault.error_rate = 0.02
    envoy_stack.backend("stable").fault.error_rate = 0.02
    envoy_stack.send("canary", 100)
    envoy_stack.send("stable", 400)
    healthy = await measurer.measure()
    assert healthy.verdict == "Successful" and healthy.sequential is not None
    assert (healthy.sequential.canary_errors, healthy.sequential.canary_requests) == (2, 100)
    assert (healthy.sequential.stable_errors, healthy.sequential.stable_requests) == (8, 400)
    assert healthy.sequential.e_value < 1  # its share of the errors is its share of the traffic

    envoy_stack.backend("canary").fault.error_rate = 0.25
    assert envoy_stack.send("canary", 100) == {200: 75, 500: 25}
    envoy_stack.send("stable", 400)
    bad = await measurer.measure()
    assert bad.verdict == "Failed" and bad.sequential is not None
    assert (bad.sequential.canary_errors, bad.sequential.canary_requests) == (27, 200)
    assert bad.sequential.intervals == 2

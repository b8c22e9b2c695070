"""The Prometheus provider against a real Prometheus scraping a real Envoy's /stats/prometheus.

The canary backend fails every fifth request (20% errors); stable never fails. Background load
runs through Envoy (the package's warm plane, conftest.py) so ``rate()`` windows have data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from activities.metrics import MetricProviderError, PrometheusProvider, build_provider
from activities.policy import WorkerPolicy, using_policy
from sluice.stack import DataPlane, PrometheusServer
from workflows.analysis import PrometheusMetricSource

# The form: 0 for a healthy cluster (Envoy has no 5xx series until the first 5xx),
# "no data" only when there is no traffic at all.
ERROR_RATIO = (
    '(sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{c}",'
    'envoy_response_code_class="5"}}[15s])) or vector(0)) / '
    '(sum(rate(envoy_cluster_upstream_rq_completed{{envoy_cluster_name="{c}"}}[15s])) > 0) '
    "or vector(0)"
)
PLAIN_RATIO = (
    'sum(rate(envoy_cluster_upstream_rq_xx{{envoy_cluster_name="{c}",'
    'envoy_response_code_class="5"}}[15s])) / '
    'sum(rate(envoy_cluster_upstream_rq_completed{{envoy_cluster_name="{c}"}}[15s]))'
)


@dataclass
class Stack:
    envoy: DataPlane
    prometheus: PrometheusServer

    def provider(self, **extra: object) -> PrometheusProvider:
        source = PrometheusMetricSource.model_validate(
            {"address": self.prometheus.url, "query": "unused", **extra}
        )
        return PrometheusProvider(source)


@pytest.fixture(scope="module")
def stack(warm_metrics_plane: DataPlane) -> Stack:
    prometheus = warm_metrics_plane.prometheus
    # rate() over 15s needs a few scrapes of both clusters with traffic in them
    prometheus.wait_for('rate(envoy_cluster_upstream_rq_completed{envoy_cluster_name="canary"}[15s]) > 0')
    prometheus.wait_for(
        'rate(envoy_cluster_upstream_rq_xx{envoy_cluster_name="canary",'
        'envoy_response_code_class="5"}[15s]) > 0'
    )
    # ...and for the ratio to have settled over a whole window, so range queries see it
    prometheus.wait_for(f"min_over_time(({ERROR_RATIO.format(c='canary')})[12s:1s]) > 0.1")
    return Stack(warm_metrics_plane, prometheus)


async def test_healthy_cluster_reads_zero_and_broken_one_reads_its_error_rate(stack: Stack) -> None:
    provider = stack.provider()
    assert await provider.run_query(ERROR_RATIO.format(c="stable")) == 0.0
    canary = await provider.run_query(ERROR_RATIO.format(c="canary"))
    assert canary is not None and canary == pytest.approx(0.2, abs=0.03)
    # without `or vector(0)` a healthy cluster has no 5xx series at all: an empty vector
    assert await provider.run_query(PLAIN_RATIO.format(c="stable")) is None
    assert await provider.is_online()


async def test_no_data_is_none_not_an_error(stack: Stack) -> None:
    provider = stack.provider()
    # no such cluster: an empty vector
    assert await provider.run_query(PLAIN_RATIO.format(c="nowhere")) is None
    assert (
        await provider.run_query('envoy_cluster_upstream_rq_completed{envoy_cluster_name="nowhere"}') is None
    )
    # 0/0: Prometheus answers NaN, which is no data too
    assert await provider.run_query("vector(0) / vector(0)") is None
    assert await provider.run_query("scalar(vector(3))") == 3.0


async def test_wrong_shapes_and_bad_queries_are_provider_errors(stack: Stack) -> None:
    provider = stack.provider()
    with pytest.raises(MetricProviderError, match=r"returned 2 series .*envoy_cluster_name='canary'"):
        await provider.run_query('envoy_cluster_upstream_rq_completed{envoy_cluster_name=~"stable|canary"}')
    with pytest.raises(MetricProviderError, match="bad_data"):
        await provider.run_query("sum(rate(")
    with pytest.raises(MetricProviderError, match="string"):
        await provider.run_query('"text"')


async def test_range_query_returns_one_series(stack: Stack) -> None:
    provider = stack.provider()
    end = datetime.now(UTC)
    values = await provider.run_range_query(
        ERROR_RATIO.format(c="canary"), end - timedelta(seconds=10), end, timedelta(seconds=1)
    )
    assert len(values) >= 10
    assert all(0.1 < value < 0.3 for value in values), str(values)
    nothing = await provider.run_range_query(
        'up{job="nowhere"}', end - timedelta(seconds=10), end, timedelta(seconds=1)
    )
    assert nothing == []


async def test_bearer_token_from_env_or_file(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the worker lets specs name this variable and the files in tmp_path
    with using_policy(WorkerPolicy(secret_env=("SLUICE_TEST_*",), secrets_dirs=(tmp_path,))):
        await _bearer_token_from_env_or_file(stack, tmp_path, monkeypatch)


async def _bearer_token_from_env_or_file(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}
        )

    monkeypatch.setenv("SLUICE_TEST_TOKEN", "from-env")
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    mock = httpx.MockTransport(handler)
    for extra in (
        {"bearerTokenEnv": "SLUICE_TEST_TOKEN"},
        {"bearerTokenFile": str(token_file)},
        {},
    ):
        source = PrometheusMetricSource.model_validate({"address": "http://p:9090", "query": "1", **extra})
        assert await PrometheusProvider(source, transport=mock).run_query("1") == 1.0
    assert seen == ["Bearer from-env", "Bearer from-file", None]

    # the real server ignores the header: a token does not get in the way
    assert await stack.provider(bearerTokenEnv="SLUICE_TEST_TOKEN").run_query("vector(1)") == 1.0

    monkeypatch.delenv("SLUICE_TEST_TOKEN")
    with pytest.raises(MetricProviderError, match="SLUICE_TEST_TOKEN is not set"):
        await stack.provider(bearerTokenEnv="SLUICE_TEST_TOKEN").run_query("vector(1)")
    with pytest.raises(MetricProviderError, match="cannot read bearerTokenFile") as error:
        await stack.provider(bearerTokenFile=str(tmp_path / "missing")).run_query("vector(1)")
    assert "from-" not in str(error.value)


async def test_stopped_prometheus_is_a_provider_error(stack: Stack, tmp_path: Path) -> None:
    with PrometheusServer.for_envoy(tmp_path, stack.envoy.envoy) as server:
        source = PrometheusMetricSource(address=server.url, query="vector(1)")
        provider = build_provider(source)
        assert await provider.run_query("vector(1)") == 1.0
        server.stop()
        with pytest.raises(MetricProviderError, match="unreachable"):
            await provider.run_query("vector(1)")
        assert not await provider.is_online()

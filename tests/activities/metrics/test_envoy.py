"""The Envoy provider against a real Envoy admin endpoint, with real requests through Envoy."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from activities.metrics import EnvoyProvider, MetricProviderError, build_provider
from activities.metrics.envoy import EnvoySnapshot
from sluice.stack import DataPlane, Load
from tests.support.binaries import require_binary
from tests.support.planes import envoy_stack
from workflows.analysis import EnvoyMetricSource

__all__ = ["envoy_stack"]  # a fixture, re-exported for pytest

FLUSH = 1.5  # the stack flushes stats every second; histograms show up after a flush


def source(stack: DataPlane, measure: str, cluster: str = "canary", **extra: object) -> EnvoyMetricSource:
    return EnvoyMetricSource.model_validate(
        {"admin": stack.admin_url, "cluster": cluster, "measure": measure, "window": "1s", **extra}
    )


async def reading(stack: DataPlane, cluster: str = "canary") -> EnvoySnapshot:
    return await EnvoyProvider(source(stack, "errorRate", cluster)).read()


async def test_error_rate_is_the_delta_since_the_baseline(envoy_stack: DataPlane) -> None:
    envoy_stack.backend("canary").fault.error_rate = 0.2
    envoy_stack.send("canary", 10)  # history before the baseline must not count
    baseline = await reading(envoy_stack)
    assert envoy_stack.send("canary", 50) == {200: 40, 500: 10}

    provider = EnvoyProvider(source(envoy_stack, "errorRate"), baseline)
    assert await provider.run_query("errorRate") == pytest.approx(0.2)
    assert provider.snapshot is not None
    assert provider.snapshot.completed - baseline.completed == 50

    # a retry gets the same baseline from the workflow: same delta, nothing counted twice
    retried = EnvoyProvider(source(envoy_stack, "errorRate"), baseline)
    assert await retried.run_query("errorRate") == pytest.approx(0.2)

    # the next measurement diffs against the new snapshot and sees only new requests
    envoy_stack.backend("canary").fault.error_rate = 0.0
    envoy_stack.send("canary", 40)
    following = EnvoyProvider(source(envoy_stack, "errorRate"), provider.snapshot)
    assert await following.run_query("errorRate") == 0.0


async def test_healthy_cluster_reads_zero_and_idle_cluster_no_data(envoy_stack: DataPlane) -> None:
    baseline = await reading(envoy_stack, "stable")
    envoy_stack.send("stable", 30)
    healthy = EnvoyProvider(source(envoy_stack, "errorRate", "stable"), baseline)
    # Envoy has no 5xx stat for a cluster that never failed: that is 0, not no data
    assert await healthy.run_query("errorRate") == 0.0

    idle = EnvoyProvider(source(envoy_stack, "errorRate", "stable"), healthy.snapshot)
    assert await idle.run_query("errorRate") is None
    idle_latency = EnvoyProvider(source(envoy_stack, "p99LatencyMs", "stable"), healthy.snapshot)
    assert await idle_latency.run_query("p99LatencyMs") is None


async def test_without_a_baseline_it_reads_twice_a_window_apart(envoy_stack: DataPlane) -> None:
    envoy_stack.backend("canary").fault.error_rate = 0.2
    load = Load(f"{envoy_stack.url}canary/load", per_second=50).start()
    try:
        provider = EnvoyProvider(source(envoy_stack, "errorRate", window="2s"))
        value = await provider.run_query("errorRate")
    finally:
        load.stop()
    assert value is not None and value == pytest.approx(0.2, abs=0.06)

    # a stale baseline or one from before a restart (counters went backwards) is not used
    now = await reading(envoy_stack)
    stale = now.model_copy(update={"at": now.at - timedelta(hours=1), "completed": 0, "errors": 0})
    provider = EnvoyProvider(source(envoy_stack, "errorRate"), stale, max_baseline_age_seconds=300)
    assert await provider.run_query("errorRate") is None  # no traffic in the fresh window
    restarted = now.model_copy(update={"completed": now.completed + 1e6})
    provider = EnvoyProvider(source(envoy_stack, "errorRate"), restarted)
    assert await provider.run_query("errorRate") is None


async def test_p99_latency_follows_the_backend(envoy_stack: DataPlane) -> None:
    baseline = await reading(envoy_stack)
    envoy_stack.send("canary", 40)
    await asyncio.sleep(FLUSH)
    fast = EnvoyProvider(source(envoy_stack, "p99LatencyMs"), baseline)
    fast_p99 = await fast.run_query("p99LatencyMs")
    assert fast_p99 is not None and fast_p99 < 25

    envoy_stack.backend("canary").fault.latency_ms = 150
    envoy_stack.send("canary", 20)
    await asyncio.sleep(FLUSH)
    slow = EnvoyProvider(source(envoy_stack, "p99LatencyMs"), fast.snapshot)
    slow_p99 = await slow.run_query("p99LatencyMs")
    # Envoy's buckets around it are 100 and 250 ms; the fast requests are not in this delta
    assert slow_p99 is not None and 100 <= slow_p99 <= 250


async def test_errors_are_provider_errors(envoy_stack: DataPlane) -> None:
    provider = build_provider(source(envoy_stack, "errorRate", cluster="nowhere"))
    assert await provider.is_online()
    with pytest.raises(MetricProviderError, match="no cluster named 'nowhere'"):
        await provider.run_query("errorRate")
    with pytest.raises(MetricProviderError, match="unknown measure"):
        await provider.run_query("p50")

    envoy_stack.stop()
    gone = build_provider(source(envoy_stack, "errorRate"))
    assert not await gone.is_online()
    with pytest.raises(MetricProviderError, match="unreachable"):
        await gone.run_query("errorRate")


def test_a_missing_binary_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run this test"):
        require_binary("/nonexistent/envoy")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="envoy binary not found"):
        require_binary("/nonexistent/envoy")

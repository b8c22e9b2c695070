"""What a metric source can make the worker send, and what it reads back into the history.

``measure_metrics`` in Temporal's ActivityEnvironment (the worker's default policy: no secret
allowed, loopback allowed) against real HTTP servers on 127.0.0.1 that record what they got.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.analysis import measure_metrics
from tests.support.http import page_server
from workflows.analysis import AnalysisSpec
from workflows.measurements import MeasureInput, MeasureResult

SECRET = "tok-4d2e8a1f9b7c3e5d6a0f"


async def measure(metric: dict[str, Any]) -> tuple[str, MeasureResult]:
    spec = AnalysisSpec.model_validate({"metrics": [{"name": "m", "max": 1, **metric}]})
    request = MeasureInput(metrics=spec.metrics, stable="stable", canary="canary")
    result: MeasureResult = await ActivityEnvironment().run(measure_metrics, request)
    return result.measurements[0].message, result


def prometheus(address: str, **extra: Any) -> dict[str, Any]:
    return {"prometheus": {"address": address, "query": "vector(1)", **extra}}


SCALAR = '{"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}}'


@pytest.mark.parametrize("name", ["TEMPORAL_API_KEY", "SOME_OTHER_SECRET"])
async def test_bearer_token_env_not_allowed_by_the_worker_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, SECRET)
    with page_server(SCALAR) as server:
        message, result = await measure(prometheus(server.url, bearerTokenEnv=name))
        assert server.requests == []
    assert result.measurements[0].verdict == "Error"
    assert "bearerTokenEnv" in message and "SLUICE_SECRET_ENV" in message
    assert SECRET not in result.model_dump_json()


async def test_bearer_token_file_outside_the_secrets_directory_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET)
    with page_server(SCALAR) as server:
        message, result = await measure(prometheus(server.url, bearerTokenFile=str(token)))
        assert server.requests == []
    assert "bearerTokenFile" in message and "SLUICE_SECRETS_DIR" in message
    assert SECRET not in result.model_dump_json()


async def test_a_page_that_is_not_prometheus_is_not_quoted() -> None:
    with page_server(f"<html>internal admin, session={SECRET}</html>") as server:
        message, result = await measure(prometheus(server.url))
    assert "not a Prometheus API answer" in message
    assert SECRET not in result.model_dump_json()


async def test_a_prometheus_error_is_quoted_only_as_a_short_sanitized_excerpt() -> None:
    body = '{"status": "error", "errorType": "bad_data", "error": "parse error near ' + SECRET * 20 + '"}'
    with page_server(body, status=400) as server:
        message, result = await measure(prometheus(server.url))
    assert "bad_data" in message and "parse error" in message
    assert SECRET not in result.model_dump_json() and len(message) < 300


async def test_an_envoy_admin_error_page_is_not_quoted() -> None:
    with page_server(f"forbidden for {SECRET}", status=403) as server:
        source = {"admin": server.url, "cluster": "canary", "measure": "errorRate"}
        message, result = await measure({"envoy": source})
    assert "HTTP 403" in message
    assert SECRET not in result.model_dump_json()


async def test_a_metadata_address_is_refused_before_any_request(no_network: list[str]) -> None:
    message, _ = await measure(prometheus("http://169.254.169.254/latest/meta-data"))
    assert "prometheus.address" in message and "SLUICE_ALLOWED_HOSTS" in message
    assert no_network == []

"""Prometheus through its HTTP API (``/api/v1/query``, ``/api/v1/query_range``).

An instant query must return one number: an empty vector is no data (None), NaN is no data (a
ratio with no traffic: 0/0), and more than one series is an error, because guessing which series
the user meant would judge the wrong thing. A bearer token is read at call time from the worker's
environment variable or file that the spec names, when the worker's policy allows that name or
file (``SLUICE_SECRET_ENV``, ``SLUICE_SECRETS_DIR``); it never appears in the spec, the history,
or an error message. Nor does the answer: errors quote at most a short sanitized excerpt of it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx

from activities._excerpt import excerpt
from activities.metrics._base import MetricProviderError, request
from activities.policy import WorkerPolicy, current_policy
from workflows.analysis import PrometheusMetricSource

__all__ = ["PrometheusProvider"]


class PrometheusProvider:
    """A :class:`~activities.metrics.RangeMetricProvider` for one Prometheus server."""

    carried_state: dict[str, Any] | None = None
    """Nothing to carry: Prometheus keeps the history itself."""

    def __init__(
        self,
        source: PrometheusMetricSource,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
        policy: WorkerPolicy | None = None,
        field: str = "prometheus",
    ) -> None:
        self.source = source
        self.field = field
        """Where the source is in the spec, for refusals (``analysis.metrics[0].prometheus``)."""
        self._transport = transport
        self._environ = os.environ if environ is None else environ
        self._policy = current_policy() if policy is None else policy

    # -- MetricProvider --------------------------------------------------------------------

    async def run_query(self, query: str, at: datetime | None = None) -> float | None:
        """Evaluate ``query`` now (or at ``at``: several queries read at one instant see the same
        scrape); one number, or None when the result is empty or NaN."""
        form = {"query": query} if at is None else {"query": query, "time": f"{at.timestamp():.3f}"}
        data = await self._call("/api/v1/query", form)
        kind = data.get("resultType")
        result = data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return _number(result)
        if kind == "vector" and isinstance(result, list):
            if not result:
                return None
            if len(result) > 1:
                raise MetricProviderError(
                    f"{self._where}: the query returned {len(result)} series "
                    f"({_labels(result)}); it must return one (aggregate it, e.g. with sum(...))"
                )
            return _number(result[0].get("value"))
        raise MetricProviderError(
            f"{self._where}: the query returned a {excerpt(kind, 20)}; it must return one number"
        )

    async def is_online(self) -> bool:
        """True when Prometheus answers ``vector(1)`` with 1 (Flagger's check)."""
        try:
            return await self.run_query("vector(1)") == 1.0
        except MetricProviderError:
            return False

    async def run_range_query(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[float]:
        """The single series of ``query`` every ``step`` over ``[start, end]``, NaNs dropped."""
        data = await self._call(
            "/api/v1/query_range",
            {
                "query": query,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step.total_seconds():g}s",
            },
        )
        result = data.get("result")
        if data.get("resultType") != "matrix" or not isinstance(result, list):
            raise MetricProviderError(
                f"{self._where}: the range query returned a {excerpt(data.get('resultType'), 20)}"
            )
        if not result:
            return []
        if len(result) > 1:
            raise MetricProviderError(
                f"{self._where}: the query returned {len(result)} series ({_labels(result)}); "
                "it must return one (aggregate it, e.g. with sum(...))"
            )
        values = [_number(point) for point in result[0].get("values", [])]
        return [value for value in values if value is not None]

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"prometheus {self.source.address}"

    def _headers(self) -> dict[str, str]:
        token: str | None = None
        if self.source.bearer_token_env is not None:
            token = self._policy.secret_from_env(self.field, self.source.bearer_token_env, self._environ)
            if not token:
                raise MetricProviderError(
                    f"{self._where}: bearerTokenEnv {self.source.bearer_token_env} is not set "
                    "in the worker's environment"
                )
        elif self.source.bearer_token_file is not None:
            path = self._policy.secret_file(self.field, self.source.bearer_token_file)
            try:
                token = path.read_text().strip()
            except OSError as error:
                raise MetricProviderError(
                    f"{self._where}: cannot read bearerTokenFile {self.source.bearer_token_file}: "
                    f"{error.strerror or type(error).__name__}"
                ) from None
            if not token:
                raise MetricProviderError(
                    f"{self._where}: bearerTokenFile {self.source.bearer_token_file} is empty"
                )
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _call(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        headers = self._headers()
        timeout = self.source.timeout.total_seconds()
        # POST: long PromQL does not fit every proxy's URL limit
        response = await request(
            self._where,
            self.source.address,
            timeout,
            self._transport,
            "POST",
            path,
            field=f"{self.field}.address",
            data=form,
            headers=headers,
        )
        if response.status_code in (401, 403):
            # a proxy's refusal; its body may echo the request, so it is not quoted
            raise MetricProviderError(f"{self._where}: HTTP {response.status_code}, not allowed")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            # not quoted: the address may be any page the worker reaches
            raise MetricProviderError(
                f"{self._where}: HTTP {response.status_code}, not a Prometheus API answer "
                f"({len(response.content)} bytes, not quoted)"
            )
        if body.get("status") != "success":
            raise MetricProviderError(
                f"{self._where}: HTTP {response.status_code}, {excerpt(body.get('errorType', 'error'), 30)}: "
                f"{excerpt(body.get('error', 'no reason given'))}"
            )
        data = body.get("data")
        if not isinstance(data, dict):
            raise MetricProviderError(f"{self._where}: the answer has no data")
        return data


def _number(sample: Any) -> float | None:
    """A ``[timestamp, "value"]`` pair's value; None for NaN (Prometheus's "no value")."""
    if not isinstance(sample, list | tuple) or len(sample) != 2:
        raise MetricProviderError(f"unexpected sample {excerpt(sample, 40)}")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise MetricProviderError(f"unexpected sample value {excerpt(sample[1], 40)}") from None
    return None if math.isnan(value) else value


def _labels(result: list[Any]) -> str:
    shown = [
        excerpt("{" + ", ".join(f"{k}={v!r}" for k, v in sorted(series.get("metric", {}).items())) + "}", 60)
        for series in result[:3]
    ]
    return ", ".join(shown) + (", ..." if len(result) > 3 else "")

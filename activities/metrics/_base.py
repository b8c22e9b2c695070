"""The metrics provider interface: the only thing analysis knows about a metrics backend.

Flagger's shape: ``run_query`` returns one number, or None when the backend has no data for the
query (no traffic yet, an empty vector): that is "inconclusive", never a failure. Anything that
went wrong on the way (unreachable, bad query, bad credentials, an answer of the wrong shape) is a
:class:`MetricProviderError`, which ``measure_metrics`` records as an ``Error`` measurement so the
workflow's ``consecutiveErrorLimit`` counts it.

A provider that needs something from its previous measurement of the same metric (Envoy's
counters, to take a difference) exposes it as :attr:`MetricProvider.carried_state`, a JSON
object; ``measure_metrics`` returns it, the workflow keeps it without looking inside, and the next
``measure_metrics`` hands it back to :func:`activities.metrics.build_provider`. No state lives in
the worker, so a retried or rescheduled activity measures the same way.

Adding a backend (Datadog, CloudWatch) is one module implementing :class:`MetricProvider` and one
line in :func:`activities.metrics.build_provider`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx

from activities.errors import SluiceError
from activities.outbound import GuardedAsyncTransport
from activities.policy import current_policy

__all__ = ["MetricProvider", "MetricProviderError", "RangeMetricProvider", "request"]


class MetricProviderError(SluiceError):
    """The provider could not answer (unreachable, refused, bad query, unexpected answer).

    Never carries a credential in its message. Not retried by Temporal: analysis counts it and
    measures again at the next interval.
    """


class MetricProvider(Protocol):
    """Runs a query and returns a single number (Flagger's ``RunQuery``/``IsOnline``)."""

    async def run_query(self, query: str) -> float | None:
        """The value now; None when there is no data. Raises :class:`MetricProviderError`."""
        ...

    async def is_online(self) -> bool:
        """Whether the backend answers at all (for ``sluice`` checks and readiness)."""
        ...

    @property
    def carried_state(self) -> dict[str, Any] | None:
        """A JSON object to hand back to this metric's next provider, or None to carry nothing."""
        ...


class RangeMetricProvider(MetricProvider, Protocol):
    """A provider that can also return one series over a window (for ``compare``)."""

    async def run_range_query(
        self, query: str, start: datetime, end: datetime, step: timedelta
    ) -> list[float]:
        """The query's values every ``step`` from ``start`` to ``end`` (missing/NaN points
        dropped; an empty list is no data). Raises :class:`MetricProviderError`."""
        ...


async def request(
    where: str,
    base_url: str,
    timeout_seconds: float,
    transport: httpx.AsyncBaseTransport | None,
    method: str,
    path: str,
    *,
    field: str,
    **kwargs: Any,
) -> httpx.Response:
    """One HTTP call to a provider; transport failures become a :class:`MetricProviderError`
    that says ``where`` (status codes are the caller's to judge).

    Without a ``transport`` (tests give one), the request goes through the worker's outbound
    policy; a refusal is a :class:`~activities.errors.NotAllowed` naming ``field``.
    """
    if transport is None:
        transport = GuardedAsyncTransport(current_policy().outbound, field)
    try:
        async with httpx.AsyncClient(
            base_url=base_url, timeout=timeout_seconds, transport=transport
        ) as client:
            return await client.request(method, path, **kwargs)
    except httpx.TimeoutException:
        raise MetricProviderError(f"{where}: timed out after {timeout_seconds:g}s") from None
    except httpx.HTTPError as error:
        raise MetricProviderError(f"{where}: unreachable ({type(error).__name__}: {error})") from None

"""The ``sequential`` metric's spec: four counters (errors and requests of canary and stable) and
the test's ``alpha`` and ``tolerance`` (the test itself: :mod:`workflows.sequential`).

Two ways to read the counters:

- ``prometheus``: a server and, under ``canary`` and ``stable``, an instant query each for the
  cumulative ``errors`` and ``requests`` counter (one number each, ``{{destination}}`` replaced by
  the version's host as in ``compare``);
- ``envoy``: an Envoy admin endpoint whose upstream clusters are named like the rollout's
  ``canary.host`` and ``stable.host`` (as the ``envoy`` router's are): ``upstream_rq_5xx`` and
  ``upstream_rq_completed`` of each.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from workflows._base import _SpecModel, http_url
from workflows._durations import Duration
from workflows.prometheus_source import PrometheusServer

__all__ = ["CounterQueries", "EnvoyAdminSource", "PrometheusServerSource", "SequentialSpec"]


class PrometheusServerSource(PrometheusServer):
    """A Prometheus server (the queries are the ``canary`` and ``stable`` counters)."""


class EnvoyAdminSource(_SpecModel):
    """An Envoy admin endpoint with one upstream cluster per version, named as their hosts."""

    admin: str
    """Envoy admin URL, e.g. ``http://127.0.0.1:9901``."""
    timeout: Duration = timedelta(seconds=5)

    @field_validator("admin")
    @classmethod
    def _admin(cls, value: str) -> str:
        return http_url(value).rstrip("/")


class CounterQueries(_SpecModel):
    """One version's cumulative counters, one PromQL instant query each (one number)."""

    errors: str = Field(min_length=1)
    """Failed requests so far, e.g. ``sum(envoy_cluster_upstream_rq_xx{...,envoy_response_code_class="5"})
    or vector(0)`` (Envoy has no 5xx series before the first 5xx)."""
    requests: str = Field(min_length=1)
    """All requests so far, e.g. ``sum(envoy_cluster_upstream_rq_completed{...})``."""


class SequentialSpec(_SpecModel):
    """Canary against stable on error counts, judged with an anytime-valid sequential test.

    The metric fails as soon as the evidence that the canary's error rate exceeds
    ``(1 + tolerance)`` times stable's reaches ``1/alpha``; a healthy canary is failed with
    probability at most ``alpha`` over the whole rollout, however often it is measured.
    """

    prometheus: PrometheusServerSource | None = None
    envoy: EnvoyAdminSource | None = None
    canary: CounterQueries | None = None
    """The canary's counters (``prometheus`` only)."""
    stable: CounterQueries | None = None
    """Stable's counters (``prometheus`` only)."""
    alpha: float = Field(default=0.01, gt=0, lt=1)
    """Most probability of ever failing a canary whose error rate is within ``tolerance``."""
    tolerance: float = Field(default=0.1, ge=0, le=10)
    """Relative increase of the error rate that still passes: 0.1 lets 1.1% pass against 1%."""

    @model_validator(mode="after")
    def _one_source(self) -> SequentialSpec:
        sources = [key for key in ("prometheus", "envoy") if getattr(self, key) is not None]
        if len(sources) != 1:
            found = ", ".join(sources) if sources else "none"
            raise ValueError(
                f"sequential reads its counters from exactly one of prometheus, envoy, got {found}"
            )
        if self.prometheus is not None:
            missing = [key for key in ("canary", "stable") if getattr(self, key) is None]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)}: required with prometheus (queries for the errors and "
                    "requests counters)"
                )
        else:
            given = [key for key in ("canary", "stable") if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: envoy reads the clusters named as the canary and stable "
                    "hosts; queries are for prometheus"
                )
        return self

    def describe(self) -> str:
        """The rule as a person reads it: ``evidence < 100 (alpha 0.01, tolerance 0.1)``."""
        return f"evidence < {1 / self.alpha:g} (alpha {self.alpha:g}, tolerance {self.tolerance:g})"

"""Fixtures over the kit's :class:`~sluice.stack.DataPlane` for the metric tests.

Envoy routes ``/stable/...`` and ``/canary/...`` to two backends, so a test decides exactly how
many requests each serves; their errors are spread evenly (every fifth for 0.2) and answered 500,
so counts are exact. Everything listens on 127.0.0.1 and is stopped after the test or module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from activities.policy import WorkerPolicy
from sluice.stack import CANARY, STABLE, Backend, DataPlane, Fault
from tests.support.binaries import require_binary

__all__ = ["envoy_rollout_spec", "envoy_stack", "managing", "metrics_plane", "start_plane"]


def start_plane(
    state_dir: Path,
    *,
    canary_error_rate: float = 0.0,
    with_prometheus: bool = False,
    load_per_second: float = 0.0,
) -> DataPlane:
    """Envoy in front of ``stable`` and ``canary`` (by path prefix), started; the caller stops it."""
    require_binary("envoy")
    if with_prometheus:
        require_binary("prometheus")
    backends = [
        Backend("stable", fault=Fault(status=500, evenly=True)),
        Backend("canary", fault=Fault(canary_error_rate, status=500, evenly=True)),
    ]
    plane = DataPlane(
        state_dir,
        backends,
        prefix_routes=True,
        with_prometheus=with_prometheus,
        load_per_second=load_per_second,
    )
    return plane.start()


@contextmanager
def metrics_plane(state_dir: Path) -> Iterator[DataPlane]:
    """The canary failing 20% of its requests, Prometheus scraping Envoy, and 20 requests/s to
    each backend for as long as it runs."""
    plane = start_plane(state_dir, canary_error_rate=0.2, with_prometheus=True, load_per_second=20)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def envoy_stack(tmp_path: Path) -> Iterator[DataPlane]:
    """A fresh Envoy with ``stable`` and ``canary`` backends, stopped after the test."""
    plane = start_plane(tmp_path)
    try:
        yield plane
    finally:
        plane.stop()


def envoy_rollout_spec(plane: DataPlane, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A rollout spec driving the plane's route (``reviews``, stable to canary) through its admin."""
    router = {
        "kind": "envoy",
        "routesFile": str(plane.envoy.routes_file),
        "routeConfig": "reviews",
        "admin": plane.admin_url,
    }
    return {
        "service": f"reviews-{uuid.uuid4().hex[:6]}",
        "router": router,
        "stable": {"host": STABLE},
        "canary": {"host": CANARY},
        "steps": steps,
        **extra,
    }


def managing(plane: DataPlane) -> WorkerPolicy:
    """The worker's policy for this plane: it may edit the plane's RDS directory."""
    return WorkerPolicy(routes_dirs=(plane.envoy.routes_file.parent,))

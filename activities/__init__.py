"""Activities: all the I/O a rollout does. The worker registers :data:`ALL_ACTIVITIES`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.analysis import measure_metrics
from activities.readiness import canary_ready
from activities.routes import read_route, remove_old_route, set_weights
from activities.sampling import sample_traffic
from activities.search_attributes import search_attributes_registered
from activities.windows import deployment_window
from activities.workloads import retire_old_workload

__all__ = [
    "ALL_ACTIVITIES",
    "canary_ready",
    "deployment_window",
    "measure_metrics",
    "read_route",
    "remove_old_route",
    "retire_old_workload",
    "sample_traffic",
    "search_attributes_registered",
    "set_weights",
]

ALL_ACTIVITIES: list[Callable[..., Any]] = [
    read_route,
    set_weights,
    remove_old_route,
    sample_traffic,
    search_attributes_registered,
    retire_old_workload,
    measure_metrics,
    canary_ready,
    deployment_window,
]

"""The router interface: the only thing the rollout knows about a data plane."""

from __future__ import annotations

from typing import Protocol

from workflows.models import RouteState, Weights

__all__ = ["Router"]


class Router(Protocol):
    """Reads and writes the weights of one route between two destinations (Flagger's shape).

    Implementations are synchronous (they run in a worker thread) and idempotent: setting the
    same weights twice leaves the object as after the first call.
    """

    def get_routes(self) -> RouteState:
        """Read the route's current weights for stable and canary (None when absent)."""
        ...

    def set_routes(self, weights: Weights) -> RouteState:
        """Set stable/canary weights, adding a missing destination, touching nothing else."""
        ...

    def finalize(self) -> RouteState:
        """Send 100% to the canary alone (the stable destination leaves the route)."""
        ...

"""A router that changes nothing and remembers what it would have done (rehearsals, benchmarks)."""

from __future__ import annotations

import threading

from workflows.models import RouteInput, RouteState, Weights
from workflows.spec import Destination, DryRunRouterSpec

__all__ = ["DryRunRouter"]

# Per worker process: a dry run has no real object to read back, so "the route" is this table,
# keyed by namespace/service/stable/canary. A worker restart forgets it, which a rehearsal can afford.
_ROUTES: dict[str, RouteState] = {}
_LOCK = threading.Lock()


class DryRunRouter:
    """Records the weights it is asked to set; starts as 100% stable."""

    def __init__(self, namespace: str, service: str, stable: Destination, canary: Destination) -> None:
        self.key = f"{namespace}/{service}/{stable.label()}/{canary.label()}"
        self.description = f"dryRun:{self.key}"

    @classmethod
    def for_route(cls, spec: DryRunRouterSpec, route: RouteInput) -> DryRunRouter:
        """The router for a rollout's route (the entry in :data:`activities.routers.ROUTERS`)."""
        return cls(route.namespace, route.service, route.stable, route.canary)

    def get_routes(self) -> RouteState:
        with _LOCK:
            return _ROUTES.get(self.key, RouteState(stable=100, canary=None, description=self.description))

    def set_routes(self, weights: Weights) -> RouteState:
        return self._record(RouteState(stable=weights.stable, canary=weights.canary))

    def finalize(self) -> RouteState:
        return self._record(RouteState(stable=None, canary=100))

    def _record(self, state: RouteState) -> RouteState:
        with _LOCK:
            previous = _ROUTES.get(self.key)
            number = int(previous.version) + 1 if previous and previous.version else 1
            state = state.model_copy(update={"version": str(number), "description": self.description})
            _ROUTES[self.key] = state
            return state

"""Routers: one module per kind behind the :class:`Router` protocol; :func:`build_router` is the
only place that lists them all."""

from __future__ import annotations

from activities.routers._base import Router
from activities.routers.dry_run import DryRunRouter
from activities.routers.envoy import EnvoyRouter
from workflows.models import RouteInput
from workflows.spec import DryRunRouterSpec, EnvoyRouterSpec

__all__ = ["DryRunRouter", "EnvoyRouter", "Router", "build_router"]


def build_router(route: RouteInput) -> Router:
    """The router for a spec's ``router`` section."""
    spec = route.router
    if isinstance(spec, EnvoyRouterSpec):
        return EnvoyRouter(spec, route.stable, route.canary)
    if isinstance(spec, DryRunRouterSpec):
        return DryRunRouter(route.namespace, route.stable, route.canary)
    from activities.errors import RouteInvalid

    raise RouteInvalid(f"router kind {spec.kind!r} is not available in this worker yet")

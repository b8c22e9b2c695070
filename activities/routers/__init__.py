"""Routers: one module per kind behind the :class:`Router` protocol; :func:`build_router` is the
only place that lists them all."""

from __future__ import annotations

from activities.routers._base import Router
from activities.routers.dry_run import DryRunRouter
from activities.routers.envoy import EnvoyRouter
from activities.routers.gateway_api import GatewayApiRouter
from activities.routers.istio import IstioRouter
from workflows.models import RouteInput
from workflows.spec import (
    DryRunRouterSpec,
    EnvoyRouterSpec,
    GatewayApiRouterSpec,
    IstioRouterSpec,
)

__all__ = [
    "DryRunRouter",
    "EnvoyRouter",
    "GatewayApiRouter",
    "IstioRouter",
    "Router",
    "build_router",
]


def build_router(route: RouteInput) -> Router:
    """The router for a spec's ``router`` section."""
    spec = route.router
    if isinstance(spec, EnvoyRouterSpec):
        return EnvoyRouter(spec, route.stable, route.canary)
    if isinstance(spec, IstioRouterSpec):
        return IstioRouter(spec, route.namespace, route.stable, route.canary)
    if isinstance(spec, GatewayApiRouterSpec):
        return GatewayApiRouter(spec, route.namespace, route.stable, route.canary)
    if isinstance(spec, DryRunRouterSpec):
        return DryRunRouter(route.namespace, route.service, route.stable, route.canary)
    from activities.errors import RouteInvalid

    raise RouteInvalid(f"router kind {spec.kind!r} is not available in this worker yet")

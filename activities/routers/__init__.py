"""Routers: one module per kind behind the :class:`Router` protocol; :data:`ROUTERS` is the only
place that lists them all.

Adding a router kind: its spec class in :mod:`workflows.spec` (kind and traits), one module here
with a ``for_route(spec, route)`` constructor, one line in :data:`ROUTERS`, and one test file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from activities.errors import RouteInvalid
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
    RouterSpecBase,
)

__all__ = [
    "ROUTERS",
    "DryRunRouter",
    "EnvoyRouter",
    "GatewayApiRouter",
    "IstioRouter",
    "Router",
    "build_router",
]

SpecT = TypeVar("SpecT", bound=RouterSpecBase)
RouterFactory = Callable[[Any, RouteInput], Router]


def _entry(
    spec: type[SpecT], build: Callable[[SpecT, RouteInput], Router]
) -> tuple[type[RouterSpecBase], RouterFactory]:
    # Typed per line, so mypy checks that each factory takes the spec class it is listed with.
    return spec, build


ROUTERS: Mapping[type[RouterSpecBase], RouterFactory] = dict(
    [
        _entry(IstioRouterSpec, IstioRouter.for_route),
        _entry(GatewayApiRouterSpec, GatewayApiRouter.for_route),
        _entry(EnvoyRouterSpec, EnvoyRouter.for_route),
        _entry(DryRunRouterSpec, DryRunRouter.for_route),
    ]
)
"""Router spec class → the factory of its router."""


def build_router(route: RouteInput) -> Router:
    """The router for a spec's ``router`` section."""
    build = ROUTERS.get(type(route.router))
    if build is None:
        raise RouteInvalid(f"router kind {route.router.kind!r} is not available in this worker yet")
    return build(route.router, route)

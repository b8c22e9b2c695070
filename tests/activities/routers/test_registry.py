"""The router registry: every router kind the spec accepts has a router, and only there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from activities.errors import RouteInvalid
from activities.policy import WorkerPolicy, using_policy
from activities.routers import ROUTERS, DryRunRouter, EnvoyRouter, build_router
from workflows.models import RouteInput
from workflows.spec import ROUTER_SPECS, Destination, DryRunRouterSpec, EnvoyRouterSpec, RouterSpecBase

V1 = Destination(host="reviews-v1")
V2 = Destination(host="reviews-v2")


def test_every_router_kind_of_the_spec_is_registered() -> None:
    assert set(ROUTERS) == set(ROUTER_SPECS)


def test_build_router_picks_the_kind_of_the_spec() -> None:
    envoy = EnvoyRouterSpec(kind="envoy", routes_file="/tmp/rds.yaml", route_config="reviews")
    with using_policy(WorkerPolicy(routes_dirs=(Path("/tmp"),))):
        built = build_router(RouteInput(router=envoy, namespace="d", stable=V1, canary=V2))
    assert isinstance(built, EnvoyRouter) and built.spec == envoy
    dry = build_router(
        RouteInput(router=DryRunRouterSpec(kind="dryRun"), namespace="d", service="s", stable=V1, canary=V2)
    )
    assert isinstance(dry, DryRunRouter) and dry.key == "d/s/reviews-v1/reviews-v2"


def test_a_kind_without_a_router_is_refused_by_name() -> None:
    """A worker older than the spec it is handed says so instead of failing obscurely."""

    class NginxRouterSpec(RouterSpecBase):
        kind: Literal["nginx"]

    route = RouteInput.model_construct(
        # a spec class no worker registers: only model_construct lets it past the union
        router=NginxRouterSpec(kind="nginx"),  # type: ignore[arg-type]
        namespace="d",
        stable=V1,
        canary=V2,
    )
    with pytest.raises(RouteInvalid, match="router kind 'nginx' is not available in this worker"):
        build_router(route)

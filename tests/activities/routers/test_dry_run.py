"""The dry-run router: records what it is asked, starts at 100% stable, changes nothing real."""

from __future__ import annotations

import uuid

from activities.routers import DryRunRouter, build_router
from workflows.models import RouteInput, Weights
from workflows.spec import Destination, DryRunRouterSpec

V1 = Destination(host="reviews-v1")
V2 = Destination(host="reviews-v2")


def fresh(service: str | None = None) -> DryRunRouter:
    """A router on a key no other test uses (the record is per worker process)."""
    return DryRunRouter("default", service or f"svc-{uuid.uuid4().hex[:8]}", V1, V2)


def test_starts_as_all_stable_with_no_canary() -> None:
    state = fresh().get_routes()
    assert (state.stable, state.canary, state.others, state.version) == (100, None, {}, "")
    assert state.description.startswith("dryRun:default/")


def test_records_weights_and_reads_them_back() -> None:
    router = fresh()
    first = router.set_routes(Weights(stable=90, canary=10))
    assert (first.stable, first.canary, first.version) == (90, 10, "1")
    assert router.get_routes() == first
    second = router.set_routes(Weights(stable=50, canary=50))
    assert (second.stable, second.canary, second.version) == (50, 50, "2")
    assert router.get_routes() == second


def test_finalize_leaves_the_canary_alone() -> None:
    router = fresh()
    router.set_routes(Weights(stable=0, canary=100))
    state = router.finalize()
    assert (state.stable, state.canary, state.version) == (None, 100, "2")
    assert router.get_routes() == state


def test_records_are_per_route_and_shared_by_instances() -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    fresh(service).set_routes(Weights(stable=70, canary=30))
    again = fresh(service).get_routes()  # a new instance (a new activity) sees the record
    assert (again.stable, again.canary) == (70, 30)
    other = fresh().get_routes()
    assert (other.stable, other.canary) == (100, None)
    other_canary = DryRunRouter("default", service, V1, Destination(host="reviews-v3"))
    assert other_canary.get_routes().canary is None


def test_build_router_makes_a_dry_run() -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    built = build_router(
        RouteInput(
            router=DryRunRouterSpec(kind="dryRun"),
            namespace="default",
            service=service,
            stable=V1,
            canary=V2,
        )
    )
    assert isinstance(built, DryRunRouter)
    built.set_routes(Weights(stable=20, canary=80))
    assert fresh(service).get_routes().canary == 80

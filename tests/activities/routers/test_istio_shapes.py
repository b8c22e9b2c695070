"""VirtualServices as Istio's samples and Argo Rollouts' guide write them, through the route
activities against the Kubernetes emulator. Every object written is validated against the
VirtualService CRD schema."""

from __future__ import annotations

from typing import Any

from tests.support.kube_emulator import ISTIO_DESTINATION_RULE, ISTIO_VIRTUAL_SERVICE, KubeEmulator
from tests.support.kube_fixtures import kube, schema_errors
from tests.support.route_activities import RouteCalls, upstream
from workflows.spec import Destination, IstioRouterSpec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

SCHEMA = "istio-virtualservice.json"
V1, V2, V3 = (Destination(host="reviews", subset=s) for s in ("v1", "v2", "v3"))


def calls(name: str, stable: Destination, canary: Destination, **router: Any) -> RouteCalls:
    spec = IstioRouterSpec.model_validate({"kind": "istio", "virtualService": name, **router})
    return RouteCalls(spec, stable, canary)


def stored(kube: KubeEmulator, name: str) -> dict[str, Any]:
    vs = kube.stored(ISTIO_VIRTUAL_SERVICE, "default", name)
    assert vs is not None
    assert schema_errors(vs, SCHEMA) == []
    return vs


def split(route: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [
        (d["destination"].get("subset") or d["destination"]["host"], d.get("weight")) for d in route["route"]
    ]


def seed_bookinfo(kube: KubeEmulator, vs: str) -> dict[str, Any]:
    kube.seed(ISTIO_DESTINATION_RULE, upstream("istio-destination-rule-reviews.yaml"))
    return kube.seed(ISTIO_VIRTUAL_SERVICE, upstream(vs))


async def test_an_unnamed_route_is_chosen_by_route_index(kube: KubeEmulator) -> None:
    seeded = seed_bookinfo(kube, "istio-virtual-service-reviews-test-v2.yaml")
    route = calls("reviews", V1, V3, routeIndex=1)

    state = await route.set(90, 10)

    after = stored(kube, "reviews")
    assert split(after["spec"]["http"][1]) == [("v1", 90), ("v3", 10)]
    assert after["spec"]["http"][0] == seeded["spec"]["http"][0]  # jason's route
    assert (state.stable, state.canary, state.description) == (90, 10, "istio:default/reviews#1")
    error = await calls("reviews", V1, V3, routeIndex=5).refused("read")
    assert error.type == "RouteNotFound"
    assert "has 2 http route(s); routeIndex 5 does not exist" in error.message


async def test_the_default_route_is_the_one_sending_to_the_stable(kube: KubeEmulator) -> None:
    """jason's route sends to v2, the canary: shifting it would send jason to v1."""
    seeded = seed_bookinfo(kube, "istio-virtual-service-reviews-test-v2.yaml")
    route = calls("reviews", V1, V2)
    assert (await route.read()).description == "istio:default/reviews#1"
    await route.set(50, 50)
    after = stored(kube, "reviews")
    assert after["spec"]["http"][0] == seeded["spec"]["http"][0]
    assert split(after["spec"]["http"][1]) == [("v1", 50), ("v2", 50)]


async def test_tls_routes_to_the_stable_shift_with_the_http_route(kube: KubeEmulator) -> None:
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, upstream("argo-rollouts-multiple-virtualsvc.yaml"))
    stable, canary = Destination(host="rollouts-demo-stable"), Destination(host="rollouts-demo-canary")
    route = calls("rollouts-demo-vsvc1", stable, canary, route="primary")

    await route.set(70, 30)
    after = stored(kube, "rollouts-demo-vsvc1")
    assert split(after["spec"]["http"][0]) == [("rollouts-demo-stable", 70), ("rollouts-demo-canary", 30)]
    assert split(after["spec"]["tls"][0]) == [("rollouts-demo-stable", 70), ("rollouts-demo-canary", 30)]
    assert after["spec"]["tls"][0]["match"] == seeded["spec"]["tls"][0]["match"]

    await route.set(0, 100)
    done = await route.remove_old()
    after = stored(kube, "rollouts-demo-vsvc1")
    assert (done.stable, done.canary) == (None, 100)
    assert (
        split(after["spec"]["http"][0]) == split(after["spec"]["tls"][0]) == [("rollouts-demo-canary", 100)]
    )


async def test_a_tls_route_with_another_destination_taking_traffic_is_refused(kube: KubeEmulator) -> None:
    vs = upstream("argo-rollouts-multiple-virtualsvc.yaml")
    vs["spec"]["tls"][0]["route"][1]["destination"]["host"] = "rollouts-demo-preview"
    vs["spec"]["tls"][0]["route"][1]["weight"] = 20
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    stable, canary = Destination(host="rollouts-demo-stable"), Destination(host="rollouts-demo-canary")
    error = await calls("rollouts-demo-vsvc1", stable, canary, route="primary").refused("set", 90, 10)
    assert "tls route 0 also sends to rollouts-demo-preview (20%)" in error.message
    assert kube.writes == []


async def test_a_mirror_to_the_canary_is_a_warning(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, upstream("istio-mirroring-httpbin.yaml", "VirtualService"))
    kube.seed(ISTIO_DESTINATION_RULE, upstream("istio-mirroring-httpbin.yaml", "DestinationRule"))
    route = calls(
        "httpbin", Destination(host="httpbin", subset="v1"), Destination(host="httpbin", subset="v2")
    )

    read = await route.read()
    assert read.warnings == [
        "http route 0 mirrors 100% of its requests to httpbin/v2, the canary: the canary also gets "
        "copies of requests, and after removeOld every request twice; remove the mirror before promoting"
    ]
    changed = await route.set(90, 10)
    assert changed.warnings == read.warnings
    assert split(stored(kube, "httpbin")["spec"]["http"][0]) == [("v1", 90), ("v2", 10)]
    # A mirror to another destination (here: the stable) says nothing.
    assert (await calls("httpbin", V2, V1).read()).warnings == []


async def test_a_third_destination_at_weight_zero_stays_at_zero(kube: KubeEmulator) -> None:
    vs = upstream("istio-virtual-service-reviews-90-10.yaml")  # with Bookinfo's v3 added at 0
    vs["spec"]["http"][0]["route"].append({"destination": {"host": "reviews", "subset": "v3"}, "weight": 0})
    kube.seed(ISTIO_DESTINATION_RULE, upstream("istio-destination-rule-reviews.yaml"))
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    route = calls("reviews", V1, V2)

    assert (await route.read()).others == {}
    await route.set(0, 100)
    assert split(stored(kube, "reviews")["spec"]["http"][0]) == [("v1", 0), ("v2", 100), ("v3", 0)]
    await route.remove_old()
    assert split(stored(kube, "reviews")["spec"]["http"][0]) == [("v2", 100), ("v3", 0)]

"""The Gateway API router against the Kubernetes API emulator, through the real client.

Every object written is read back over HTTP, validated against the upstream HTTPRoute CRD
schema, and compared with what was seeded: only the weights may differ.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from activities.errors import Forbidden, RouteInvalid, RouteNotFound, TransientError
from activities.routers import GatewayApiRouter, build_router
from tests.support.kube_emulator import GATEWAY_HTTP_ROUTE, KubeEmulator
from tests.support.kube_fixtures import kube, read_back, schema_errors, without
from workflows.models import RouteInput, Weights
from workflows.spec import Destination, GatewayApiRouterSpec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

SCHEMA = "gateway-httproute.json"
V1 = Destination(host="reviews-v1", port=9080)
V2 = Destination(host="reviews-v2", port=9080)


def reviews_route(stable: int = 90, canary: int = 10) -> dict[str, Any]:
    """The Gateway API twin of Bookinfo's reviews split, plus a rule that must stay as it is."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "timeouts": {"request": "10s"},
                    "backendRefs": [
                        {"name": "reviews-v1", "port": 9080, "weight": stable},
                        {
                            "name": "reviews-v2",
                            "port": 9080,
                            "weight": canary,
                            "filters": [
                                {
                                    "type": "ResponseHeaderModifier",
                                    "responseHeaderModifier": {
                                        "set": [{"name": "x-canary", "value": "true"}]
                                    },
                                }
                            ],
                        },
                    ],
                },
                {
                    "matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
                    "backendRefs": [{"name": "reviews-v2", "port": 9080}],
                },
            ],
        },
    }


def router(stable: Destination = V1, canary: Destination = V2, rule: int = 0) -> GatewayApiRouter:
    spec = GatewayApiRouterSpec(kind="gatewayApi", http_route="reviews", rule=rule)
    return GatewayApiRouter(spec, "default", stable, canary)


def weights_of(obj: dict[str, Any], rule: int = 0) -> list[tuple[str, int | None]]:
    return [(r["name"], r.get("weight")) for r in obj["spec"]["rules"][rule]["backendRefs"]]


def assert_only_weights_changed(before: dict[str, Any], after: dict[str, Any]) -> None:
    ignore = [("metadata", "resourceVersion"), ("metadata", "generation")]
    strip = [("spec", "rules", 0, "backendRefs", i, "weight") for i in range(2)]
    assert without(after, *ignore, *strip) == without(before, *ignore, *strip)


async def test_sets_60_40_and_changes_nothing_but_the_weights(kube: KubeEmulator) -> None:
    seeded = kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())
    gateway = router()
    before = await asyncio.to_thread(gateway.get_routes)
    assert (before.stable, before.canary) == (90, 10)

    state = await asyncio.to_thread(gateway.set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, GATEWAY_HTTP_ROUTE, "reviews")
    assert weights_of(after) == [("reviews-v1", 60), ("reviews-v2", 40)]
    assert schema_errors(after, SCHEMA) == []
    assert_only_weights_changed(seeded, after)
    assert (state.stable, state.canary, state.version) == (
        60,
        40,
        after["metadata"]["resourceVersion"],
    )
    assert state.description == "gatewayApi:default/reviews#rule0"


async def test_default_weights_are_proportions(kube: KubeEmulator) -> None:
    route = reviews_route()
    for ref in route["spec"]["rules"][0]["backendRefs"]:
        del ref["weight"]  # each weighs 1: an even split
    kube.seed(GATEWAY_HTTP_ROUTE, route)
    state = await asyncio.to_thread(router().get_routes)
    assert (state.stable, state.canary) == (50, 50)


async def test_adds_the_missing_canary_with_the_stable_port(kube: KubeEmulator) -> None:
    route = reviews_route()
    route["spec"]["rules"][0]["backendRefs"] = [{"name": "reviews-v1", "port": 9080}]
    kube.seed(GATEWAY_HTTP_ROUTE, route)
    gateway = router(canary=Destination(host="reviews-v2"))
    assert (await asyncio.to_thread(gateway.get_routes)).stable == 100

    await asyncio.to_thread(gateway.set_routes, Weights(stable=100, canary=0))

    after = await read_back(kube, GATEWAY_HTTP_ROUTE, "reviews")
    assert after["spec"]["rules"][0]["backendRefs"] == [
        {"name": "reviews-v1", "port": 9080, "weight": 100},
        {"name": "reviews-v2", "port": 9080, "weight": 0},
    ]
    assert schema_errors(after, SCHEMA) == []
    assert after["spec"]["rules"][1] == route["spec"]["rules"][1]


async def test_port_tells_backends_apart(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())
    # reviews-v2 on another port is another backend: it is added, the 9080 one is foreign.
    gateway = router(canary=Destination(host="reviews-v2", port=9443))
    with pytest.raises(RouteInvalid, match="also sends to reviews-v2:9080"):
        await asyncio.to_thread(gateway.set_routes, Weights(stable=50, canary=50))
    assert kube.writes == []


async def test_conflict_rereads_and_keeps_the_concurrent_change(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())

    def gitops_adds_a_hostname(emulator: KubeEmulator) -> None:
        emulator.edit(
            GATEWAY_HTTP_ROUTE,
            "default",
            "reviews",
            lambda obj: obj["spec"].__setitem__("hostnames", ["reviews.example.com"]),
        )

    kube.before_write(GATEWAY_HTTP_ROUTE, gitops_adds_a_hostname)

    await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, GATEWAY_HTTP_ROUTE, "reviews")
    assert weights_of(after) == [("reviews-v1", 60), ("reviews-v2", 40)]
    assert after["spec"]["hostnames"] == ["reviews.example.com"]
    assert [code for _, _, code in kube.writes] == [409, 200]
    assert schema_errors(after, SCHEMA) == []


async def test_500_twice_is_transient_then_the_retry_succeeds(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())
    kube.fail("put", GATEWAY_HTTP_ROUTE, 503, times=2)
    gateway = router()
    for _ in range(2):
        with pytest.raises(TransientError, match="HTTP 503"):
            await asyncio.to_thread(gateway.set_routes, Weights(stable=60, canary=40))
    state = await asyncio.to_thread(gateway.set_routes, Weights(stable=60, canary=40))
    assert (state.stable, state.canary) == (60, 40)


async def test_rule_out_of_range(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())
    with pytest.raises(RouteNotFound, match="has 2 rule\\(s\\); rule 5 does not exist"):
        await asyncio.to_thread(router(rule=5).get_routes)


async def test_missing_route(kube: KubeEmulator) -> None:
    with pytest.raises(RouteNotFound, match="HTTPRoute default/reviews not found"):
        await asyncio.to_thread(router().get_routes)


async def test_forbidden(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route())
    kube.forbid("get", GATEWAY_HTTP_ROUTE)
    with pytest.raises(Forbidden, match=r"may not get httproutes\.gateway\.networking\.k8s\.io"):
        await asyncio.to_thread(router().get_routes)


async def test_v1beta1_fallback(kube: KubeEmulator) -> None:
    kube.serve(GATEWAY_HTTP_ROUTE, versions=("v1beta1",))
    kube.seed(GATEWAY_HTTP_ROUTE, reviews_route(), version="v1beta1")
    await asyncio.to_thread(router().set_routes, Weights(stable=20, canary=80))
    after = await read_back(kube, GATEWAY_HTTP_ROUTE, "reviews", version="v1beta1")
    assert weights_of(after) == [("reviews-v1", 20), ("reviews-v2", 80)]


async def test_finalize_sends_everything_to_the_canary_alone(kube: KubeEmulator) -> None:
    seeded = kube.seed(GATEWAY_HTTP_ROUTE, reviews_route(0, 100))
    state = await asyncio.to_thread(router().finalize)
    after = await read_back(kube, GATEWAY_HTTP_ROUTE, "reviews")
    canary = dict(seeded["spec"]["rules"][0]["backendRefs"][1], weight=100)
    assert after["spec"]["rules"][0]["backendRefs"] == [canary]
    assert after["spec"]["rules"][1] == seeded["spec"]["rules"][1]
    assert schema_errors(after, SCHEMA) == []
    assert (state.stable, state.canary) == (None, 100)


async def test_build_router_makes_a_gateway_api_router(kube: KubeEmulator) -> None:
    built = build_router(
        RouteInput(
            router=GatewayApiRouterSpec(kind="gatewayApi", http_route="reviews"),
            namespace="default",
            stable=V1,
            canary=V2,
        )
    )
    assert isinstance(built, GatewayApiRouter)


def test_the_schema_check_can_fail() -> None:
    """A guard on the guard: the schema rejects a negative weight and a missing name."""
    broken = reviews_route()
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    del broken["spec"]["rules"][0]["backendRefs"][1]["name"]
    errors = schema_errors(broken, SCHEMA)
    assert any("backendRefs.0.weight" in e for e in errors)
    assert any("'name' is a required property" in e for e in errors)
    assert schema_errors(reviews_route(), SCHEMA) == []

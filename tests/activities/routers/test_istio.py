"""The Istio router against the Kubernetes API emulator, through the real ``kubernetes`` client.

Every object written is read back over HTTP, validated against the upstream VirtualService
CRD schema, and compared with what was seeded: only the weights may differ.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from activities.errors import Conflict, Forbidden, RouteInvalid, RouteNotFound, TransientError
from activities.routers import IstioRouter, build_router
from tests.support.kube_emulator import ISTIO_DESTINATION_RULE, ISTIO_VIRTUAL_SERVICE, KubeEmulator
from tests.support.kube_fixtures import kube, read_back, schema_errors, without
from workflows.models import RouteInput, Weights
from workflows.spec import Destination, IstioRouterSpec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

SCHEMA = "istio-virtualservice.json"
V1 = Destination(host="reviews-v1")
V2 = Destination(host="reviews-v2")


def bookinfo_reviews(stable: int = 90, canary: int = 10) -> dict[str, Any]:
    """Bookinfo's reviews VirtualService: a test-user route first, then the 90/10 split."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default", "labels": {"app": "reviews"}},
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "name": "jason",
                    "match": [{"headers": {"end-user": {"exact": "jason"}}}],
                    "route": [{"destination": {"host": "reviews-v2"}}],
                },
                {
                    "name": "route",
                    "timeout": "10s",
                    "retries": {"attempts": 3, "perTryTimeout": "2s"},
                    "route": [
                        {
                            "destination": {"host": "reviews-v1", "port": {"number": 9080}},
                            "weight": stable,
                        },
                        {
                            "destination": {"host": "reviews-v2", "port": {"number": 9080}},
                            "weight": canary,
                            "headers": {"response": {"set": {"x-canary": "true"}}},
                        },
                    ],
                },
            ],
        },
    }


def router(stable: Destination = V1, canary: Destination = V2, route: str | None = "route") -> IstioRouter:
    spec = IstioRouterSpec(kind="istio", virtual_service="reviews", route=route)
    return IstioRouter(spec, "default", stable, canary)


def weights_of(obj: dict[str, Any], route: int = 1) -> list[tuple[str, int | None]]:
    entries = obj["spec"]["http"][route]["route"]
    return [(e["destination"]["host"], e.get("weight")) for e in entries]


def assert_only_weights_changed(before: dict[str, Any], after: dict[str, Any]) -> None:
    ignore = [("metadata", "resourceVersion"), ("metadata", "generation")]
    strip = [("spec", "http", 1, "route", i, "weight") for i in range(2)]
    assert without(after, *ignore, *strip) == without(before, *ignore, *strip)


async def test_sets_60_40_and_changes_nothing_but_the_weights(kube: KubeEmulator) -> None:
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    istio = router()

    before = await asyncio.to_thread(istio.get_routes)
    assert (before.stable, before.canary, before.others) == (90, 10, {})

    state = await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert weights_of(after) == [("reviews-v1", 60), ("reviews-v2", 40)]
    assert schema_errors(after, SCHEMA) == []
    assert_only_weights_changed(seeded, after)
    assert (state.stable, state.canary) == (60, 40)
    assert state.version == after["metadata"]["resourceVersion"] != seeded["metadata"]["resourceVersion"]
    assert state.description == "istio:default/reviews#route"
    # The client sent one PUT carrying the resourceVersion it had read.
    assert kube.writes == [("PUT", ISTIO_VIRTUAL_SERVICE.path("v1", "default", "reviews"), 200)]


async def test_setting_the_same_weights_again_does_not_write(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    istio = router()
    first = await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))
    second = await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))
    assert second == first
    assert len(kube.writes) == 1


async def test_default_route_is_the_first(kube: KubeEmulator) -> None:
    vs = bookinfo_reviews()
    vs["spec"]["http"].reverse()  # the split first, the test-user route second
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    state = await asyncio.to_thread(router(route=None).set_routes, Weights(stable=0, canary=100))
    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert weights_of(after, route=0) == [("reviews-v1", 0), ("reviews-v2", 100)]
    assert after["spec"]["http"][1] == vs["spec"]["http"][1]
    assert state.description == "istio:default/reviews#0"


async def test_step_zero_adds_the_missing_canary_at_weight_zero(kube: KubeEmulator) -> None:
    vs = bookinfo_reviews()
    vs["spec"]["http"][1]["route"] = [{"destination": {"host": "reviews-v1", "port": {"number": 9080}}}]
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    istio = router()
    assert (await asyncio.to_thread(istio.get_routes)).model_dump(include={"stable", "canary"}) == {
        "stable": 100,
        "canary": None,
    }

    await asyncio.to_thread(istio.set_routes, Weights(stable=100, canary=0))

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert after["spec"]["http"][1]["route"] == [
        {"destination": {"host": "reviews-v1", "port": {"number": 9080}}, "weight": 100},
        # The new entry takes the port the route already uses.
        {"destination": {"host": "reviews-v2", "port": {"number": 9080}}, "weight": 0},
    ]
    assert schema_errors(after, SCHEMA) == []
    assert after["spec"]["http"][0] == vs["spec"]["http"][0]


async def test_fully_qualified_hosts_count_as_the_same_destination(kube: KubeEmulator) -> None:
    vs = bookinfo_reviews()
    vs["spec"]["http"][1]["route"][1]["destination"]["host"] = "reviews-v2.default.svc.cluster.local"
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    state = await asyncio.to_thread(router().set_routes, Weights(stable=50, canary=50))
    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert len(after["spec"]["http"][1]["route"]) == 2  # not a third, duplicate entry
    assert (state.stable, state.canary) == (50, 50)


def subset_reviews() -> dict[str, Any]:
    vs = bookinfo_reviews()
    vs["spec"]["http"][1]["route"] = [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 90},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10},
    ]
    return vs


def destination_rule(*subsets: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {
            "host": "reviews",
            "subsets": [{"name": s, "labels": {"version": s}} for s in subsets],
        },
    }


async def test_subset_split(kube: KubeEmulator) -> None:
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, subset_reviews())
    kube.seed(ISTIO_DESTINATION_RULE, destination_rule("v1", "v2", "v3"))
    istio = router(Destination(host="reviews", subset="v1"), Destination(host="reviews", subset="v2"))

    state = await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert [(e["destination"]["subset"], e["weight"]) for e in after["spec"]["http"][1]["route"]] == [
        ("v1", 60),
        ("v2", 40),
    ]
    assert (state.stable, state.canary) == (60, 40)
    assert schema_errors(after, SCHEMA) == []
    assert_only_weights_changed(seeded, after)


async def test_subset_missing_from_the_destination_rule_is_refused_before_writing(
    kube: KubeEmulator,
) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, subset_reviews())
    kube.seed(ISTIO_DESTINATION_RULE, destination_rule("v1"))
    istio = router(Destination(host="reviews", subset="v1"), Destination(host="reviews", subset="v2"))

    with pytest.raises(RouteInvalid) as raised:
        await asyncio.to_thread(istio.set_routes, Weights(stable=90, canary=10))

    message = str(raised.value)
    assert "subset v2 of host reviews is not defined in DestinationRule default/reviews" in message
    assert "it defines: v1" in message
    assert kube.writes == []


async def test_subset_without_any_destination_rule_says_which_rule_it_needs(
    kube: KubeEmulator,
) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, subset_reviews())
    istio = router(Destination(host="reviews", subset="v1"), Destination(host="reviews", subset="v2"))
    with pytest.raises(RouteNotFound, match="need a DestinationRule named 'reviews'"):
        await asyncio.to_thread(istio.set_routes, Weights(stable=90, canary=10))
    assert kube.writes == []


async def test_falls_back_to_v1beta1_when_v1_is_not_served(kube: KubeEmulator) -> None:
    kube.serve(ISTIO_VIRTUAL_SERVICE, versions=("v1beta1",))
    vs = bookinfo_reviews()
    vs["apiVersion"] = "networking.istio.io/v1beta1"
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, vs, version="v1beta1")
    # The emulator really answers 404 for v1 now, as an older Istio would.
    missing = await kube.get(ISTIO_VIRTUAL_SERVICE.path("v1", "default", "reviews"))
    assert missing.status == 404

    state = await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews", version="v1beta1")
    assert after["apiVersion"] == "networking.istio.io/v1beta1"
    assert weights_of(after) == [("reviews-v1", 60), ("reviews-v2", 40)]
    assert_only_weights_changed(seeded, after)
    assert schema_errors(after, SCHEMA) == []
    assert [path for _, path, _ in kube.writes] == [
        ISTIO_VIRTUAL_SERVICE.path("v1beta1", "default", "reviews")
    ]
    assert (state.stable, state.canary) == (60, 40)


async def test_one_object_whichever_version_wrote_it(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews(), version="v1beta1")
    await asyncio.to_thread(router().set_routes, Weights(stable=30, canary=70))  # writes v1
    as_beta = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews", version="v1beta1")
    assert weights_of(as_beta) == [("reviews-v1", 30), ("reviews-v2", 70)]


async def test_crd_not_installed(kube: KubeEmulator) -> None:
    kube.serve(ISTIO_VIRTUAL_SERVICE, versions=())
    with pytest.raises(RouteNotFound, match=r"does not serve virtualservices\.networking\.istio\.io"):
        await asyncio.to_thread(router().get_routes)


async def test_conflict_rereads_and_keeps_the_concurrent_change(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())

    def someone_else_edits(emulator: KubeEmulator) -> None:
        # Between the router's GET and its PUT: a person raises the timeout and labels it.
        def change(obj: dict[str, Any]) -> None:
            obj["spec"]["http"][1]["timeout"] = "30s"
            obj["metadata"]["labels"]["owner"] = "alice"

        emulator.edit(ISTIO_VIRTUAL_SERVICE, "default", "reviews", change)

    kube.before_write(ISTIO_VIRTUAL_SERVICE, someone_else_edits, name="reviews")

    state = await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert weights_of(after) == [("reviews-v1", 60), ("reviews-v2", 40)]
    assert after["spec"]["http"][1]["timeout"] == "30s"  # kept, not overwritten
    assert after["metadata"]["labels"] == {"app": "reviews", "owner": "alice"}
    path = ISTIO_VIRTUAL_SERVICE.path("v1", "default", "reviews")
    assert kube.writes == [("PUT", path, 409), ("PUT", path, 200)]
    assert state.version == after["metadata"]["resourceVersion"]
    assert schema_errors(after, SCHEMA) == []


async def test_injected_409_applies_nothing_and_the_router_retries(kube: KubeEmulator) -> None:
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    kube.fail("put", ISTIO_VIRTUAL_SERVICE, 409, name="reviews")
    await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))
    puts = [r for r in kube if r.method.value == "PUT"]  # kmock records every request
    assert len(puts) == 2
    # Only the second PUT reached the store, so exactly one version was added.
    assert kube.writes == [("PUT", ISTIO_VIRTUAL_SERVICE.path("v1", "default", "reviews"), 200)]
    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    assert int(after["metadata"]["resourceVersion"]) == int(seeded["metadata"]["resourceVersion"]) + 1


async def test_persistent_conflicts_give_up_with_a_retryable_conflict(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    kube.fail("put", ISTIO_VIRTUAL_SERVICE, 409, name="reviews", times=10)
    with pytest.raises(Conflict, match="gave up after 5 attempts") as raised:
        await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))
    assert raised.value.retryable
    assert weights_of(await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")) == [
        ("reviews-v1", 90),
        ("reviews-v2", 10),
    ]


async def test_500_twice_is_transient_then_the_retry_succeeds(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    kube.fail("put", ISTIO_VIRTUAL_SERVICE, 500, name="reviews", times=2)
    istio = router()
    for _ in range(2):  # what Temporal's retries would do
        with pytest.raises(TransientError, match="HTTP 500") as raised:
            await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))
        assert raised.value.retryable
        unchanged = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
        assert weights_of(unchanged) == [("reviews-v1", 90), ("reviews-v2", 10)]

    state = await asyncio.to_thread(istio.set_routes, Weights(stable=60, canary=40))
    assert (state.stable, state.canary) == (60, 40)


async def test_missing_virtual_service_is_not_found_and_named(kube: KubeEmulator) -> None:
    with pytest.raises(RouteNotFound) as raised:
        await asyncio.to_thread(router().get_routes)
    assert "VirtualService default/reviews not found" in str(raised.value)
    assert not raised.value.retryable


async def test_missing_http_route_lists_the_routes_there_are(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    with pytest.raises(RouteNotFound, match=r"no http route named 'canary'.*\['jason', 'route'\]"):
        await asyncio.to_thread(router(route="canary").get_routes)


async def test_forbidden_names_the_verb_and_resource(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    kube.forbid("update", ISTIO_VIRTUAL_SERVICE, name="reviews")
    with pytest.raises(Forbidden) as raised:
        await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=40))
    message = str(raised.value)
    assert "may not update virtualservices.networking.istio.io" in message
    assert "VirtualService default/reviews" in message
    assert 'cannot update resource "virtualservices"' in message  # the API server's own words
    assert not raised.value.retryable


async def test_a_third_destination_is_refused(kube: KubeEmulator) -> None:
    vs = bookinfo_reviews(80, 10)
    vs["spec"]["http"][1]["route"].append({"destination": {"host": "reviews-v3"}, "weight": 10})
    kube.seed(ISTIO_VIRTUAL_SERVICE, vs)
    istio = router()
    assert (await asyncio.to_thread(istio.get_routes)).others == {"reviews-v3": 10}
    with pytest.raises(RouteInvalid, match="also sends to reviews-v3"):
        await asyncio.to_thread(istio.set_routes, Weights(stable=0, canary=100))
    assert kube.writes == []


async def test_weights_must_sum_to_100(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    with pytest.raises(RouteInvalid, match="sum to 100"):
        await asyncio.to_thread(router().set_routes, Weights(stable=60, canary=60))
    assert kube.writes == []


async def test_finalize_sends_everything_to_the_canary_alone(kube: KubeEmulator) -> None:
    seeded = kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews(0, 100))
    istio = router()

    state = await asyncio.to_thread(istio.finalize)

    after = await read_back(kube, ISTIO_VIRTUAL_SERVICE, "reviews")
    expected = copy.deepcopy(seeded["spec"]["http"][1]["route"][1])
    expected["weight"] = 100
    assert after["spec"]["http"][1]["route"] == [expected]  # the canary entry, headers and all
    assert after["spec"]["http"][0] == seeded["spec"]["http"][0]
    assert schema_errors(after, SCHEMA) == []
    assert (state.stable, state.canary) == (None, 100)
    again = await asyncio.to_thread(istio.finalize)
    assert again.version == state.version  # idempotent: no second write
    assert (await asyncio.to_thread(istio.get_routes)).stable is None


async def test_build_router_makes_an_istio_router(kube: KubeEmulator) -> None:
    kube.seed(ISTIO_VIRTUAL_SERVICE, bookinfo_reviews())
    built = build_router(
        RouteInput(
            router=IstioRouterSpec(kind="istio", virtual_service="reviews", route="route"),
            namespace="default",
            stable=V1,
            canary=V2,
        )
    )
    assert isinstance(built, IstioRouter)
    assert (await asyncio.to_thread(built.get_routes)).canary == 10


def test_the_schema_check_can_fail() -> None:
    """A guard on the guard: the schema rejects a weight that is not an integer."""
    broken = bookinfo_reviews()
    broken["spec"]["http"][1]["route"][0]["weight"] = "60"
    assert schema_errors(bookinfo_reviews(), SCHEMA) == []
    assert any("spec.http.1.route.0.weight" in e for e in schema_errors(broken, SCHEMA))

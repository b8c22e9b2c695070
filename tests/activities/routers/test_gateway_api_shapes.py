"""HTTPRoutes as the Gateway API project writes them, through the route activities.

Each route comes from ``tests/upstream`` (examples and conformance tests); the activities run as
the worker runs them against the Kubernetes emulator, which answers 422 for what the CRD's CEL
rules forbid. Every object written is validated against the HTTPRoute CRD schema.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.kube_emulator import GATEWAY_HTTP_ROUTE, KubeEmulator
from tests.support.kube_fixtures import kube, schema_errors
from tests.support.route_activities import RouteCalls, upstream
from workflows.spec import Destination, GatewayApiRouterSpec

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

SCHEMA = "gateway-httproute.json"
CONFORMANCE = "gateway-conformance-infra"
FOO_V1, FOO_V2 = Destination(host="foo-v1", port=8080), Destination(host="foo-v2", port=8080)


def calls(
    name: str, stable: Destination, canary: Destination, rule: int | None = None, **kw: Any
) -> RouteCalls:
    chosen = {} if rule is None else {"rule": rule}  # as a user writes it: rule left out, or set
    router = GatewayApiRouterSpec.model_validate({"kind": "gatewayApi", "httpRoute": name, **chosen})
    return RouteCalls(router, stable, canary, **kw)


def conformance(name: str, stable: str, canary: str) -> RouteCalls:
    """A route of the Gateway API conformance tests: their namespace, their backends' port."""
    return calls(
        name, Destination(host=stable, port=8080), Destination(host=canary, port=8080), namespace=CONFORMANCE
    )


def stored(kube: KubeEmulator, name: str, namespace: str = "default") -> dict[str, Any]:
    route = kube.stored(GATEWAY_HTTP_ROUTE, namespace, name)
    assert route is not None
    assert schema_errors(route, SCHEMA) == []
    return route


def weights(rule: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(ref["name"], ref.get("weight")) for ref in rule.get("backendRefs", [])]


def redirect_then_split() -> dict[str, Any]:
    """foo-route with the redirect example's rule first: /cayenne redirects, the rest splits."""
    route = upstream("gateway-api-traffic-split-2.yaml")
    redirect = upstream("gateway-api-httproute-redirect-full.yaml")
    route["spec"]["rules"] = redirect["spec"]["rules"] + route["spec"]["rules"]
    return route


async def test_the_default_rule_is_the_one_routing_to_the_stable_not_a_redirect(kube: KubeEmulator) -> None:
    seeded = kube.seed(GATEWAY_HTTP_ROUTE, redirect_then_split())
    route = calls("foo-route", FOO_V1, FOO_V2)

    read = await route.read()
    assert (read.stable, read.canary, read.description) == (90, 10, "gatewayApi:default/foo-route#rule1")
    await route.set(100, 0)

    after = stored(kube, "foo-route")
    assert after["spec"]["rules"][0] == seeded["spec"]["rules"][0]  # the redirect, untouched
    assert weights(after["spec"]["rules"][1]) == [("foo-v1", 100), ("foo-v2", 0)]


async def test_a_redirect_rule_named_by_the_spec_is_refused_with_its_index(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, redirect_then_split())
    route = calls("foo-route", FOO_V1, FOO_V2, rule=0)

    for call, args in (("read", ()), ("set", (100, 0))):
        error = await route.refused(call, *args)
        assert error.type == "RouteInvalid" and error.non_retryable
        assert "rule 0 answers with a redirect (RequestRedirect filter)" in error.message
        assert "rule 1 routes to foo-v1: set router.rule to it, or leave rule out" in error.message
    assert kube.writes == []  # refused before the API server had to


async def test_an_explicit_rule_still_selects_that_rule(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, redirect_then_split())
    state = await calls("foo-route", FOO_V1, FOO_V2, rule=1).set(60, 40)
    assert (state.stable, state.canary) == (60, 40)
    assert weights(stored(kube, "foo-route")["spec"]["rules"][1]) == [("foo-v1", 60), ("foo-v2", 40)]


async def test_a_third_backend_at_weight_zero_stays_at_zero(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-weight.yaml"))
    route = conformance("weighted-backends", "infra-backend-v1", "infra-backend-v2")

    read = await route.read()
    assert (read.stable, read.canary, read.others) == (70, 30, {})
    await route.set(100, 0)
    await route.set(0, 100)
    assert weights(stored(kube, "weighted-backends", CONFORMANCE)["spec"]["rules"][0]) == [
        ("infra-backend-v1", 0), ("infra-backend-v2", 100), ("infra-backend-v3", 0),
    ]  # fmt: skip
    done = await route.remove_old()
    assert (done.stable, done.canary) == (None, 100)
    assert weights(stored(kube, "weighted-backends", CONFORMANCE)["spec"]["rules"][0]) == [
        ("infra-backend-v2", 100), ("infra-backend-v3", 0),
    ]  # fmt: skip


async def test_a_backend_that_takes_traffic_is_still_refused(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-weight.yaml"))
    route = conformance("weighted-backends", "infra-backend-v1", "infra-backend-v3")
    assert (await route.read()).others == {"infra-backend-v2:8080": 30}
    error = await route.refused("set", 100, 0)
    assert error.type == "RouteInvalid"
    assert "rule 0 also sends to infra-backend-v2:8080 (30%)" in error.message
    assert kube.writes == []


async def test_a_service_import_backend_is_refused_naming_rule_backend_and_why(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-hybrid.yaml"))
    store = Destination(host="store", port=8080)
    for canary, why in (
        (Destination(host="store-v2", port=8080), "and takes 10% of the rule"),
        (Destination(host="store-global", port=8080), "(it has the canary's name)"),
    ):
        error = await calls("store", store, canary).refused("read")
        assert error.type == "RouteInvalid"
        assert (
            "rule 0, backendRef 1 (ServiceImport store-global:8080) is a ServiceImport of API group "
            f"'multicluster.x-k8s.io', not a Service {why}: only Service backendRefs in the route's "
            "namespace are supported"
        ) in error.message
    assert kube.writes == []


async def test_the_stable_in_another_namespace_is_not_taken_for_a_stranger(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-reference-grant.yaml"))
    route = conformance("reference-grant", "web-backend", "web-backend-v2")
    for call, args in (("read", ()), ("set", (100, 0))):
        error = await route.refused(call, *args)
        assert error.type == "RouteInvalid"
        assert "also sends to" not in error.message
        assert (
            "rule 0, backendRef 0 (gateway-conformance-web-backend/web-backend:8080) is in namespace "
            "gateway-conformance-web-backend, not the route's namespace gateway-conformance-infra "
            "(it has the stable's name): only Service backendRefs in the route's namespace are supported"
        ) in error.message
    assert kube.writes == []


async def test_a_request_mirror_to_the_canary_is_a_warning(kube: KubeEmulator) -> None:
    kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-request-mirror.yaml"))
    route = conformance("request-mirror", "infra-backend-v1", "mirrored-backend")
    warning = (
        "rule 0 mirrors 100% of its requests to mirrored-backend, the canary (RequestMirror filter): "
        "the canary also gets copies of requests, and after removeOld every request twice"
    )
    read = await route.read()
    assert (read.stable, read.canary) == (100, None)  # a ref naming the route's own namespace is ours
    assert [w for w in read.warnings if warning in w] == read.warnings != []
    changed = await route.set(90, 10)
    assert changed.warnings == read.warnings
    assert weights(stored(kube, "request-mirror", CONFORMANCE)["spec"]["rules"][0]) == [
        ("infra-backend-v1", 90), ("mirrored-backend", 10),
    ]  # fmt: skip


async def test_a_header_rule_to_the_canary_is_left_alone(kube: KubeEmulator) -> None:
    seeded = kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-traffic-split-1.yaml"))
    route = calls("foo-route", FOO_V1, FOO_V2)
    assert (await route.read()).selected == 0
    await route.set(90, 10)
    await route.set(0, 100)
    done = await route.remove_old()
    after = stored(kube, "foo-route")
    assert weights(after["spec"]["rules"][0]) == [("foo-v2", 100)]
    assert after["spec"]["rules"][1] == seeded["spec"]["rules"][1]
    # Both rules now send only to foo-v2; a retried removeOld keeps to the rule step 0 chose.
    again = await route.remove_old()
    assert (again.stable, again.canary, again.version) == (None, 100, done.version)


async def test_after_remove_old_a_rule_left_on_the_old_version_is_not_taken_for_the_route(
    kube: KubeEmulator,
) -> None:
    """Testers pinned to foo-v1 by a header rule: once the split rule sends only to foo-v2, that
    rule is the only one naming foo-v1, yet it is not the rollout's."""
    seeded = upstream("gateway-api-traffic-split-2.yaml")
    testers = upstream("gateway-api-traffic-split-1.yaml")["spec"]["rules"][1]
    testers["backendRefs"][0]["name"] = "foo-v1"
    seeded["spec"]["rules"].append(testers)
    kube.seed(GATEWAY_HTTP_ROUTE, seeded)
    route = calls("foo-route", FOO_V1, FOO_V2)
    await route.read()
    await route.set(0, 100)
    done = await route.remove_old()
    again = await route.read()  # a drift check, or a retried removeOld
    assert (again.stable, again.canary, again.description) == (
        None,
        100,
        "gatewayApi:default/foo-route#rule0",
    )
    assert (await route.remove_old()).version == done.version
    assert weights(stored(kube, "foo-route")["spec"]["rules"][1]) == [("foo-v1", None)]


async def test_several_rules_routing_to_the_stable_need_the_spec_to_choose(kube: KubeEmulator) -> None:
    route = upstream("gateway-api-traffic-split-1.yaml")
    route["spec"]["rules"][1]["backendRefs"] = copy.deepcopy(route["spec"]["rules"][0]["backendRefs"])
    kube.seed(GATEWAY_HTTP_ROUTE, route)
    error = await calls("foo-route", FOO_V1, FOO_V2).refused("read")
    assert error.type == "RouteInvalid"
    assert "rules 0, 1 all route to foo-v1; sluicegate shifts one rule: set router.rule" in error.message
    state = await calls("foo-route", FOO_V1, FOO_V2, rule=1).set(90, 10)
    assert (state.stable, state.canary) == (90, 10)

"""The emulator enforces the HTTPRoute CRD's CEL rules the router tests rely on, as a real API
server does: 422 ``Invalid`` with a ``Status`` body naming the field and the CRD's message."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from activities.errors import RouteInvalid
from activities.routers._kube import CustomObject
from activities.routers.gateway_api import HTTP_ROUTE
from tests.support.kube_cel import HTTP_ROUTE_RULES, CelRule, violations
from tests.support.kube_emulator import GATEWAY_HTTP_ROUTE, KubeEmulator
from tests.support.kube_fixtures import SCHEMA_DIR, kube
from tests.support.route_activities import upstream

__all__ = ["kube"]  # the fixture, imported so pytest finds it here

REDIRECT = "RequestRedirect filter must not be used together with backendRefs"


def schema_node(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for part in path:
        node = node["items"] if part == "*" else node["properties"][part]
    return node


@pytest.mark.parametrize("rule", HTTP_ROUTE_RULES, ids=lambda r: ".".join(r.path))
def test_each_emulated_rule_is_the_crds_own(rule: CelRule) -> None:
    """The expression and message are verbatim in the carried CRD schema, at that place."""
    schema = json.loads(Path(SCHEMA_DIR / "gateway-httproute.json").read_text())
    carried = schema_node(schema, rule.path).get("x-kubernetes-validations", [])
    assert {"rule": rule.rule, "message": rule.message} in carried


def redirect_with_backends() -> dict[str, Any]:
    """Envoy Gateway's docs once showed this shape; the CRD's CEL rules now forbid it."""
    route = upstream("gateway-api-httproute-redirect-full.yaml")
    route["spec"]["rules"][0]["backendRefs"] = [{"name": "paprika", "port": 80}]
    return route


def test_the_checks_mean_what_the_rules_say() -> None:
    assert violations(upstream("gateway-api-httproute-redirect-full.yaml"), HTTP_ROUTE_RULES) == []
    assert violations(redirect_with_backends(), HTTP_ROUTE_RULES) == [("spec.rules[0]", REDIRECT)]
    portless = upstream("gateway-api-traffic-split-2.yaml")
    del portless["spec"]["rules"][0]["backendRefs"][1]["port"]
    assert violations(portless, HTTP_ROUTE_RULES) == [
        ("spec.rules[0].backendRefs[1]", "Must have port for Service reference")
    ]
    # A ServiceImport needs no port; an empty backendRefs list sits fine beside a redirect.
    assert violations(upstream("gateway-api-httproute-hybrid.yaml"), HTTP_ROUTE_RULES) == []
    emptied = redirect_with_backends()
    emptied["spec"]["rules"][0]["backendRefs"] = []
    assert violations(emptied, HTTP_ROUTE_RULES) == []


async def test_a_write_breaking_a_cel_rule_gets_422_and_changes_nothing(kube: KubeEmulator) -> None:
    seeded = kube.seed(GATEWAY_HTTP_ROUTE, upstream("gateway-api-httproute-redirect-full.yaml"))
    body = redirect_with_backends()
    body["metadata"] = seeded["metadata"]
    response = await kube.put(GATEWAY_HTTP_ROUTE.path("v1", "default", "http-filter-redirect"), json=body)
    status = await response.json()
    assert response.status == 422
    assert status["reason"] == "Invalid" and status["code"] == 422
    assert status["message"] == (
        'HTTPRoute.gateway.networking.k8s.io "http-filter-redirect" is invalid: '
        f'spec.rules[0]: Invalid value: "object": {REDIRECT}'
    )
    assert status["details"]["kind"] == "HTTPRoute"
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": f'Invalid value: "object": {REDIRECT}',
            "field": "spec.rules[0]",
        }
    ]
    assert kube.stored(GATEWAY_HTTP_ROUTE, "default", "http-filter-redirect") == seeded

    # Through the client the routers use, it is the RouteInvalid a real cluster would cause.
    client_side = CustomObject(HTTP_ROUTE, "default", "http-filter-redirect")
    with pytest.raises(RouteInvalid, match=r"the API server refused the update: HTTPRoute.*is invalid"):
        await asyncio.to_thread(client_side.replace, body)

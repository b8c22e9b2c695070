"""Gateway API ``HTTPRoute``: the weights of ``spec.rules[<rule>].backendRefs[]``.

Destinations are Service backendRefs: ``{host: <Service name>, port: <port>}``. In the Gateway
API a backendRef without ``weight`` weighs 1 and weights are proportions, not percentages; this
router always writes explicit weights that sum to 100 and reads any other sum as proportions.
Writes go through :meth:`CustomObject.update` (optimistic concurrency) and touch only the
``weight`` of the two refs (and add a missing one); filters, matches, other rules stay.
"""

from __future__ import annotations

from typing import Any

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import ObjectKind
from activities.routers._kube_route import KubernetesRoute
from workflows.spec import Destination, GatewayApiRouterSpec

__all__ = ["HTTP_ROUTE", "GatewayApiRouter"]

HTTP_ROUTE = ObjectKind("gateway.networking.k8s.io", "httproutes", "HTTPRoute", ("v1", "v1beta1"))


class GatewayApiRouter(KubernetesRoute[GatewayApiRouterSpec]):
    """Shifts weights between two Service backendRefs of one rule of an HTTPRoute."""

    object_kind = HTTP_ROUTE
    entries_name = "rule"

    @property
    def object_name(self) -> str:
        """The HTTPRoute's name."""
        return self.spec.http_route

    @property
    def description(self) -> str:
        """``gatewayApi:default/reviews#rule0``."""
        return f"gatewayApi:{self.namespace}/{self.spec.http_route}#rule{self.spec.rule}"

    # -- navigation ---------------------------------------------------------------------------

    def _entries(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        rules = (obj.get("spec") or {}).get("rules")
        if not isinstance(rules, list) or self.spec.rule >= len(rules):
            count = len(rules) if isinstance(rules, list) else 0
            raise RouteNotFound(
                f"{self.description}: HTTPRoute {self.namespace}/{self.spec.http_route} has "
                f"{count} rule(s); rule {self.spec.rule} does not exist"
            )
        rule = rules[self.spec.rule]
        refs = rule.setdefault("backendRefs", [])
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise RouteInvalid(f"{self.description}: backendRefs is not a list of references")
        return refs

    def _matches(self, ref: dict[str, Any], dest: Destination) -> bool:
        is_service = ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"
        same_namespace = ref.get("namespace", self.namespace) == self.namespace
        return (
            is_service
            and same_namespace
            and ref.get("name") == dest.host
            and (dest.port is None or ref.get("port") == dest.port)
        )

    def _entry_weights(self, entries: list[dict[str, Any]]) -> list[int]:
        """Each ref's share in percent; the Gateway API's default weight is 1, and weights are
        proportions, so a rule written by hand may not sum to 100."""
        raw = [int(r.get("weight", 1)) for r in entries]
        total = sum(raw)
        if total == 0:
            return [0 for _ in raw]
        if total == 100:
            return raw
        return [round(100 * w / total) for w in raw]

    def _entry_label(self, entry: dict[str, Any]) -> str:
        name = str(entry.get("name", "?"))
        return f"{name}:{entry['port']}" if entry.get("port") else name

    def _new_entry(self, dest: Destination, refs: list[dict[str, Any]]) -> dict[str, Any]:
        # A Service backendRef must name a port; the versions normally share the stable's.
        port = dest.port or next((r.get("port") for r in refs if r.get("port")), None)
        if port is None:
            raise RouteInvalid(
                f"{self.description}: backendRef {dest.host} is missing and no port is known; "
                f"give the destination a port ({{host: {dest.host}, port: 9080}})"
            )
        return {"name": dest.host, "port": port}

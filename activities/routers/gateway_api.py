"""Gateway API ``HTTPRoute``: the weights of ``spec.rules[<rule>].backendRefs[]``.

Destinations are Service backendRefs: ``{host: <Service name>, port: <port>}``. In the Gateway
API a backendRef without ``weight`` weighs 1 and weights are proportions, not percentages; this
router always writes explicit weights that sum to 100 and reads any other sum as proportions.
Writes go through :meth:`CustomObject.update` (optimistic concurrency) and touch only the
``weight`` of the two refs (and add a missing one); filters, matches, other rules stay.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import CustomObject, ObjectKind, api_client
from activities.routers._split import WeightedEntries
from workflows.models import RouteState, Weights
from workflows.spec import Destination, GatewayApiRouterSpec

__all__ = ["HTTP_ROUTE", "GatewayApiRouter"]

HTTP_ROUTE = ObjectKind("gateway.networking.k8s.io", "httproutes", "HTTPRoute", ("v1", "v1beta1"))


class GatewayApiRouter(WeightedEntries):
    """Shifts weights between two Service backendRefs of one rule of an HTTPRoute."""

    entries_name = "rule"

    def __init__(
        self,
        spec: GatewayApiRouterSpec,
        namespace: str,
        stable: Destination,
        canary: Destination,
        api: client.ApiClient | None = None,
    ) -> None:
        self.spec = spec
        self.namespace = namespace
        self.stable = stable
        self.canary = canary
        self.object = CustomObject(HTTP_ROUTE, namespace, spec.http_route, api or api_client())

    @property
    def description(self) -> str:
        """``gatewayApi:default/reviews#rule0``."""
        return f"gatewayApi:{self.namespace}/{self.spec.http_route}#rule{self.spec.rule}"

    # -- Router --------------------------------------------------------------------------

    def get_routes(self) -> RouteState:
        """The current weights of stable and canary, in percent of the rule's traffic."""
        return self._state(self.object.read())

    def set_routes(self, weights: Weights) -> RouteState:
        """Set the split, adding a missing stable/canary backendRef; nothing else changes."""
        if weights.stable + weights.canary != 100 or min(weights.stable, weights.canary) < 0:
            raise RouteInvalid(
                f"{self.description}: weights must be 0..100 and sum to 100, got "
                f"{weights.stable}/{weights.canary}"
            )

        def change(obj: dict[str, Any]) -> None:
            refs = self._refs(obj)
            self._refuse_others(refs)
            stable = self._find(refs, self.stable)
            canary = self._find(refs, self.canary)
            if stable is None:
                stable = self._new_ref(self.stable, refs)
                refs.insert(0, stable)
            if canary is None:
                canary = self._new_ref(self.canary, refs)
                refs.append(canary)
            stable["weight"] = weights.stable
            canary["weight"] = weights.canary

        return self._state(self.object.update(change))

    def finalize(self) -> RouteState:
        """The rule sends 100% to the canary alone; the stable backendRef leaves it."""

        def change(obj: dict[str, Any]) -> None:
            refs = self._refs(obj)
            self._refuse_others(refs)
            canary = self._find(refs, self.canary) or self._new_ref(self.canary, refs)
            canary["weight"] = 100
            refs[:] = [canary]

        return self._state(self.object.update(change))

    # -- navigation ---------------------------------------------------------------------------

    def _refs(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
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
        return _percents(entries)

    def _entry_label(self, entry: dict[str, Any]) -> str:
        return _label(entry)

    def _new_ref(self, dest: Destination, refs: list[dict[str, Any]]) -> dict[str, Any]:
        # A Service backendRef must name a port; the versions normally share the stable's.
        port = dest.port or next((r.get("port") for r in refs if r.get("port")), None)
        if port is None:
            raise RouteInvalid(
                f"{self.description}: backendRef {dest.host} is missing and no port is known; "
                f"give the destination a port ({{host: {dest.host}, port: 9080}})"
            )
        return {"name": dest.host, "port": port}

    def _state(self, obj: dict[str, Any]) -> RouteState:
        refs = self._refs(obj)
        stable = canary = None
        for ref, percent in zip(refs, _percents(refs), strict=True):
            if self._matches(ref, self.stable):
                stable = (stable or 0) + percent
            elif self._matches(ref, self.canary):
                canary = (canary or 0) + percent
        return RouteState(
            stable=stable,
            canary=canary,
            others=self._others(refs),
            version=str((obj.get("metadata") or {}).get("resourceVersion", "")),
            description=self.description,
        )


def _percents(refs: list[dict[str, Any]]) -> list[int]:
    """Each ref's share in percent; the Gateway API's default weight is 1."""
    raw = [int(r.get("weight", 1)) for r in refs]
    total = sum(raw)
    if total == 0:
        return [0 for _ in raw]
    if total == 100:
        return raw
    return [round(100 * w / total) for w in raw]


def _label(ref: dict[str, Any]) -> str:
    name = str(ref.get("name", "?"))
    return f"{name}:{ref['port']}" if ref.get("port") else name

"""Istio ``VirtualService``: the weights of ``spec.http[<route>].route[]``.

Two shapes of split, both as in the Istio docs:

- host-level: stable and canary are two Services (``{host: reviews-v1}`` / ``{host: reviews-v2}``);
- subset-level: one host, two subsets of a ``DestinationRule``
  (``{host: reviews, subset: v1}`` / ``{host: reviews, subset: v2}``). The rule is read by the
  host's short name (Bookinfo's convention; the Role grants ``get`` on destinationrules, not
  ``list``), and a subset it does not define is refused before any write, because Istio
  would answer 503 (no healthy upstream) for the traffic sent to it.

Every write goes through :meth:`CustomObject.update` (optimistic concurrency) and touches only
the ``route[]`` of the one http route: other routes, matches, retries, headers, every other
key of a destination entry stay as they were.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import CustomObject, ObjectKind, api_client
from activities.routers._split import WeightedEntries
from workflows.models import RouteState, Weights
from workflows.spec import Destination, IstioRouterSpec

__all__ = ["DESTINATION_RULE", "VIRTUAL_SERVICE", "IstioRouter"]

# v1 since Istio 1.22; v1beta1 for older control planes, which serve the same schema.
VIRTUAL_SERVICE = ObjectKind("networking.istio.io", "virtualservices", "VirtualService", ("v1", "v1beta1"))
DESTINATION_RULE = ObjectKind("networking.istio.io", "destinationrules", "DestinationRule", ("v1", "v1beta1"))


class IstioRouter(WeightedEntries):
    """Shifts weights between two destinations of one http route of a VirtualService."""

    entries_name = "route"

    def __init__(
        self,
        spec: IstioRouterSpec,
        namespace: str,
        stable: Destination,
        canary: Destination,
        api: client.ApiClient | None = None,
    ) -> None:
        self.spec = spec
        self.namespace = namespace
        self.stable = stable
        self.canary = canary
        self._api = api or api_client()
        self.object = CustomObject(VIRTUAL_SERVICE, namespace, spec.virtual_service, self._api)

    @property
    def description(self) -> str:
        """``istio:default/reviews#route`` (``#0`` for the first, unnamed route)."""
        return f"istio:{self.namespace}/{self.spec.virtual_service}#{self.spec.route or 0}"

    # -- Router --------------------------------------------------------------------------

    def get_routes(self) -> RouteState:
        """The current weights of stable and canary on the route."""
        return self._state(self.object.read())

    def set_routes(self, weights: Weights) -> RouteState:
        """Set the split, adding a missing stable/canary entry; nothing else changes."""
        _check_weights(weights, self.description)
        self._check_subsets()

        def change(obj: dict[str, Any]) -> None:
            entries = self._entries(obj)
            self._refuse_others(entries)
            stable = self._find(entries, self.stable)
            canary = self._find(entries, self.canary)
            if stable is None:
                stable = {"destination": self._destination(self.stable, entries)}
                entries.insert(0, stable)
            if canary is None:
                canary = {"destination": self._destination(self.canary, entries)}
                entries.append(canary)
            stable["weight"] = weights.stable
            canary["weight"] = weights.canary

        return self._state(self.object.update(change))

    def finalize(self) -> RouteState:
        """The route sends 100% to the canary alone; the stable entry leaves it."""
        self._check_subsets(canary_only=True)

        def change(obj: dict[str, Any]) -> None:
            entries = self._entries(obj)
            self._refuse_others(entries)
            canary = self._find(entries, self.canary) or {
                "destination": self._destination(self.canary, entries)
            }
            canary["weight"] = 100
            entries[:] = [canary]

        return self._state(self.object.update(change))

    # -- navigation ---------------------------------------------------------------------------

    def _http_route(self, obj: dict[str, Any]) -> dict[str, Any]:
        spec = obj.get("spec") or {}
        routes = spec.get("http")
        if not isinstance(routes, list) or not routes:
            raise RouteInvalid(
                f"{self.description}: the VirtualService has no http routes "
                "(sluicegate shifts HTTP weights only)"
            )
        if self.spec.route is None:
            chosen: dict[str, Any] = routes[0]
        else:
            named = [r for r in routes if isinstance(r, dict) and r.get("name") == self.spec.route]
            if not named:
                names = [r.get("name") for r in routes if isinstance(r, dict)]
                raise RouteNotFound(
                    f"{self.description}: no http route named {self.spec.route!r} in "
                    f"VirtualService {self.namespace}/{self.spec.virtual_service} (routes: {names})"
                )
            chosen = named[0]
        if "delegate" in chosen or "redirect" in chosen or "directResponse" in chosen:
            raise RouteInvalid(
                f"{self.description}: the http route delegates, redirects or answers directly; "
                "it has no weighted destinations to shift"
            )
        return chosen

    def _entries(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        route = self._http_route(obj)
        entries = route.setdefault("route", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise RouteInvalid(f"{self.description}: route[] is not a list of destinations")
        return entries

    def _matches(self, entry: dict[str, Any], dest: Destination) -> bool:
        target = entry.get("destination") or {}
        return _same_host(str(target.get("host", "")), dest.host, self.namespace) and (
            target.get("subset") == dest.subset
        )

    def _entry_weights(self, entries: list[dict[str, Any]]) -> list[int]:
        return _weights(entries)

    def _entry_label(self, entry: dict[str, Any]) -> str:
        return _label(entry)

    def _destination(self, dest: Destination, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """A destination for a new entry; the port follows the existing entries' port."""
        result: dict[str, Any] = {"host": dest.host}
        if dest.subset:
            result["subset"] = dest.subset
        # Without the port a multi-port Service would be ambiguous; the versions share it.
        ports = [(e.get("destination") or {}).get("port") for e in entries]
        port = next((p for p in ports if p), None)
        if port is not None:
            result["port"] = dict(port)
        return result

    def _state(self, obj: dict[str, Any]) -> RouteState:
        entries = self._entries(obj)
        weights = _weights(entries)
        stable = canary = None
        for entry, weight in zip(entries, weights, strict=True):
            if self._matches(entry, self.stable):
                stable = (stable or 0) + weight
            elif self._matches(entry, self.canary):
                canary = (canary or 0) + weight
        return RouteState(
            stable=stable,
            canary=canary,
            others=self._others(entries),
            version=str((obj.get("metadata") or {}).get("resourceVersion", "")),
            description=self.description,
        )

    # -- DestinationRule -------------------------------------------------------------------------

    def _check_subsets(self, canary_only: bool = False) -> None:
        wanted = [self.canary] if canary_only else [self.stable, self.canary]
        by_host: dict[str, list[str]] = {}
        for dest in wanted:
            if dest.subset:
                by_host.setdefault(dest.host, []).append(dest.subset)
        for host, subsets in by_host.items():
            rule_name = host.split(".")[0]
            rule = CustomObject(DESTINATION_RULE, self.namespace, rule_name, self._api)
            try:
                body = rule.read()
            except RouteNotFound:
                raise RouteNotFound(
                    f"{self.description}: subsets {', '.join(subsets)} of host {host} need a "
                    f"DestinationRule named {rule_name!r} in namespace {self.namespace} "
                    "(sluicegate reads the rule named after the host), and there is none"
                ) from None
            spec = body.get("spec") or {}
            if not _same_host(str(spec.get("host", "")), host, self.namespace):
                raise RouteInvalid(
                    f"{self.description}: DestinationRule {self.namespace}/{rule_name} is for "
                    f"host {spec.get('host')!r}, not {host!r}"
                )
            defined = [s.get("name") for s in spec.get("subsets") or [] if isinstance(s, dict)]
            missing = [s for s in subsets if s not in defined]
            if missing:
                raise RouteInvalid(
                    f"{self.description}: subset {', '.join(missing)} of host {host} is not "
                    f"defined in DestinationRule {self.namespace}/{rule_name} "
                    f"(it defines: {', '.join(map(str, defined)) or 'no subsets'}); "
                    "traffic sent to it would fail with 503"
                )


def _check_weights(weights: Weights, where: str) -> None:
    if not (0 <= weights.stable <= 100 and 0 <= weights.canary <= 100) or (
        weights.stable + weights.canary != 100
    ):
        raise RouteInvalid(
            f"{where}: weights must be 0..100 and sum to 100, got {weights.stable}/{weights.canary}"
        )


def _weights(entries: list[dict[str, Any]]) -> list[int]:
    """Istio's reading: a lone destination takes 100; otherwise a missing weight is 0."""
    if len(entries) == 1 and entries[0].get("weight") is None:
        return [100]
    return [int(e.get("weight") or 0) for e in entries]


def _label(entry: dict[str, Any]) -> str:
    target = entry.get("destination") or {}
    host = str(target.get("host", "?"))
    return f"{host}/{target['subset']}" if target.get("subset") else host


def _same_host(written: str, wanted: str, namespace: str) -> bool:
    """``reviews`` in namespace ``default`` is also ``reviews.default.svc.cluster.local``."""
    if written == wanted:
        return True
    short = wanted.split(".")[0]
    if "." in wanted and not wanted.startswith(f"{short}.{namespace}"):
        return False  # another namespace or an external host: only an exact match counts
    forms = {short, f"{short}.{namespace}", f"{short}.{namespace}.svc"}
    forms.add(f"{short}.{namespace}.svc.cluster.local")
    return written in forms and wanted in forms

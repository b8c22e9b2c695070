"""Istio ``VirtualService``: the weights of ``spec.http[<route>].route[]``.

Two shapes of split, both as in the Istio docs:

- host-level: stable and canary are two Services (``{host: reviews-v1}`` / ``{host: reviews-v2}``);
- subset-level: one host, two subsets of a ``DestinationRule``
  (``{host: reviews, subset: v1}`` / ``{host: reviews, subset: v2}``). The rule is read by the
  host's short name (Bookinfo's convention; the Role grants ``get`` on destinationrules, not
  ``list``), and a subset it does not define is refused before any write, because Istio
  would answer 503 (no healthy upstream) for the traffic sent to it.

Which http route: ``router.route`` (its name), ``router.routeIndex`` (its position, for
unnamed routes such as Bookinfo's), else the one http route that sends to the stable (see
:meth:`KubernetesRoute._default_index`). The ``tls`` routes that send to the stable follow the
http route's weights. A ``mirror`` to the canary is reported as a warning, not refused.

Every write goes through :meth:`CustomObject.update` (optimistic concurrency) and touches only
those ``route[]`` lists: other routes, matches, retries, headers, every other key of a
destination entry stay as they were.
"""

from __future__ import annotations

from typing import Any

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import CustomObject, ObjectKind
from activities.routers._kube_route import KubernetesRoute, WeightedList
from workflows.spec import Destination, IstioRouterSpec

__all__ = ["DESTINATION_RULE", "VIRTUAL_SERVICE", "IstioRouter"]

# v1 since Istio 1.22; v1beta1 for older control planes, which serve the same schema.
VIRTUAL_SERVICE = ObjectKind("networking.istio.io", "virtualservices", "VirtualService", ("v1", "v1beta1"))
DESTINATION_RULE = ObjectKind("networking.istio.io", "destinationrules", "DestinationRule", ("v1", "v1beta1"))


class IstioRouter(KubernetesRoute[IstioRouterSpec]):
    """Shifts weights between two destinations of one http route of a VirtualService (and of
    the tls routes that send to the stable, which follow the http route's weights)."""

    object_kind = VIRTUAL_SERVICE
    _index: int | None = None
    """The http route in use once the VirtualService was read."""

    @property
    def object_name(self) -> str:
        """The VirtualService's name."""
        return self.spec.virtual_service

    @property
    def description(self) -> str:
        """``istio:default/reviews#route`` (by name), ``#1`` (by position, or the default)."""
        index = self._index if self._index is not None else self.spec.route_index
        where = self.spec.route if self.spec.route is not None else index
        return f"istio:{self.namespace}/{self.spec.virtual_service}" + ("" if where is None else f"#{where}")

    # -- navigation ---------------------------------------------------------------------------

    def _lists(self, obj: dict[str, Any]) -> list[WeightedList]:
        spec = obj.get("spec") or {}
        routes = spec.get("http")
        if not isinstance(routes, list) or not routes or not all(isinstance(r, dict) for r in routes):
            raise RouteInvalid(
                f"{self.description}: the VirtualService has no http routes "
                "(sluicegate shifts HTTP weights only)"
            )
        index = self._http_index(routes)
        self._index = index
        chosen = routes[index]
        if "delegate" in chosen or "redirect" in chosen or "directResponse" in chosen:
            raise RouteInvalid(
                f"{self.description}: http route {index} delegates, redirects or answers directly; "
                "it has no weighted destinations to shift"
            )
        lists = [WeightedList(f"http route {index}", self._route_list(chosen, f"http route {index}"), chosen)]
        # TLS passthrough traffic to the same service shifts with its HTTP traffic, as Argo
        # Rollouts does with tlsRoutes; a tls route that does not send to the stable is not ours.
        for position, tls in enumerate(spec.get("tls") or []):
            if isinstance(tls, dict) and any(
                isinstance(e, dict) and self._matches(e, self.stable) for e in tls.get("route") or []
            ):
                where = f"tls route {position}"
                lists.append(WeightedList(where, self._route_list(tls, where), tls))
        return lists

    def _http_index(self, routes: list[dict[str, Any]]) -> int:
        if self.spec.route is not None:
            names = [r.get("name") for r in routes]
            if self.spec.route not in names:
                raise RouteNotFound(
                    f"{self.description}: no http route named {self.spec.route!r} in VirtualService "
                    f"{self.namespace}/{self.spec.virtual_service} (routes: {names}); "
                    "an unnamed route is chosen by position with routeIndex"
                )
            return names.index(self.spec.route)
        if self.spec.route_index is not None:
            if self.spec.route_index >= len(routes):
                raise RouteNotFound(
                    f"{self.description}: VirtualService {self.namespace}/{self.spec.virtual_service} "
                    f"has {len(routes)} http route(s); routeIndex {self.spec.route_index} does not exist"
                )
            return self.spec.route_index
        entries = [[e for e in r.get("route") or [] if isinstance(e, dict)] for r in routes]
        return self._default_index(entries, "http route", "route (or routeIndex)")

    def _route_list(self, holder: dict[str, Any], where: str) -> list[dict[str, Any]]:
        entries = holder.setdefault("route", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise RouteInvalid(f"{self.description}: {where} route[] is not a list of destinations")
        return entries

    def _matches(self, entry: dict[str, Any], dest: Destination) -> bool:
        target = entry.get("destination") or {}
        return _same_host(str(target.get("host", "")), dest.host, self.namespace) and (
            target.get("subset") == dest.subset
        )

    def _entry_weights(self, entries: list[dict[str, Any]]) -> list[int]:
        """Istio's reading: a lone destination takes 100; otherwise a missing weight is 0."""
        if len(entries) == 1 and entries[0].get("weight") is None:
            return [100]
        return [int(e.get("weight") or 0) for e in entries]

    def _entry_label(self, entry: dict[str, Any]) -> str:
        target = entry.get("destination") or {}
        host = str(target.get("host", "?"))
        return f"{host}/{target['subset']}" if target.get("subset") else host

    def _new_entry(self, dest: Destination, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """A route entry for ``dest``; the port follows the existing entries' port."""
        result: dict[str, Any] = {"host": dest.host}
        if dest.subset:
            result["subset"] = dest.subset
        # Without the port a multi-port Service would be ambiguous; the versions share it.
        ports = [(e.get("destination") or {}).get("port") for e in entries]
        port = next((p for p in ports if p), None)
        if port is not None:
            result["port"] = dict(port)
        return {"destination": result}

    def _warnings(self, chosen: WeightedList) -> list[str]:
        """A ``mirror`` / ``mirrors`` to the canary: it copies requests the canary may also
        serve, so after removeOld the canary gets every request twice."""
        route = chosen.holder
        mirrors: list[tuple[Any, Any]] = []
        if isinstance(route.get("mirror"), dict):
            percent = (route.get("mirrorPercentage") or {}).get("value")
            if percent is None:  # the deprecated integer forms
                percent = route.get("mirrorPercent", route.get("mirror_percent"))
            mirrors.append((route["mirror"], percent))
        for mirror in route.get("mirrors") or []:
            if isinstance(mirror, dict):
                mirrors.append((mirror.get("destination"), (mirror.get("percentage") or {}).get("value")))
        warnings = []
        for target, percent in mirrors:
            share = 100.0 if percent is None else float(percent)
            if share > 0 and isinstance(target, dict) and self._matches({"destination": target}, self.canary):
                warnings.append(
                    f"{chosen.where} mirrors {share:g}% of its requests to {self.canary.label()}, the "
                    "canary: the canary also gets copies of requests, and after removeOld every "
                    "request twice; remove the mirror before promoting"
                )
        return warnings

    # -- DestinationRule -------------------------------------------------------------------------

    def _check_destinations(self, dests: list[Destination]) -> None:
        """Refuse a subset that the host's DestinationRule does not define (Istio would 503)."""
        by_host: dict[str, list[str]] = {}
        for dest in dests:
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

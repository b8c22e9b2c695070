"""What Envoy's admin endpoint says about a route: the route config it serves, whether it rejected
an update of it, the clusters it knows and the runtime keys set in it.

Every request goes through the worker's outbound policy (:class:`GuardedTransport`, purpose
``router.admin``). Envoy's admin does not expose why a filesystem RDS update was rejected (only its
log does), so :func:`why_rejected` reproduces the checks that explain the common cases.
"""

from __future__ import annotations

from typing import Any

import httpx

from activities.outbound import GuardedTransport, OutboundPolicy
from activities.routers._rds_file import Spelling

__all__ = ["EnvoyAdmin", "why_rejected"]


class EnvoyAdmin:
    """Envoy's admin at ``url`` (no trailing slash needed)."""

    def __init__(self, url: str, outbound: OutboundPolicy) -> None:
        self.url = url.rstrip("/")
        self._outbound = outbound

    def client(self) -> httpx.Client:
        """A client for a series of admin requests (short timeouts: it is on loopback or near)."""
        return httpx.Client(timeout=2.0, transport=GuardedTransport(self._outbound, "router.admin"))

    def _json(self, client: httpx.Client, path: str) -> dict[str, Any]:
        response = client.get(self.url + path)
        response.raise_for_status()
        body = response.json()
        if not isinstance(body, dict):
            raise ValueError(f"{path}: not a JSON object")
        return body

    def served_route_config(self, client: httpx.Client, name: str) -> dict[str, Any] | None:
        """The RouteConfiguration ``name`` Envoy serves (its config dump, snake_case), or None."""
        dump = self._json(client, "/config_dump?resource=dynamic_route_configs")
        # With ?resource=dynamic_route_configs each entry of "configs" is one DynamicRouteConfig;
        # without it the entries are RoutesConfigDumps holding a dynamic_route_configs list.
        for config in dump.get("configs", []):
            for dynamic in [config, *config.get("dynamic_route_configs", [])]:
                route_config = dynamic.get("route_config", {})
                if route_config.get("name") == name:
                    return dict(route_config)
        return None

    def rejected_updates(self, client: httpx.Client, name: str) -> int | None:
        """How many RDS updates of route config ``name`` Envoy has rejected, summed over the
        connection managers that use it (``http.<prefix>.rds.<name>.update_rejected``); None when
        no connection manager counts it."""
        stats = self._json(client, "/stats?format=json&filter=update_rejected").get("stats", [])
        # Stat names replace ':' by '_'; either form identifies the route config.
        suffixes = {f".rds.{name}.update_rejected", f".rds.{name.replace(':', '_')}.update_rejected"}
        counts = [
            int(stat.get("value") or 0)
            for stat in stats
            if isinstance(stat, dict) and any(str(stat.get("name", "")).endswith(s) for s in suffixes)
        ]
        return sum(counts) if counts else None

    def clusters(self, client: httpx.Client) -> set[str]:
        """The names of the clusters Envoy knows."""
        statuses = self._json(client, "/clusters?format=json").get("cluster_statuses", [])
        return {str(status.get("name")) for status in statuses if isinstance(status, dict)}

    def runtime_values(self, client: httpx.Client, keys: list[str]) -> dict[str, str]:
        """Which of ``keys`` Envoy's runtime sets, with their values."""
        entries = self._json(client, "/runtime").get("entries", {})
        values = {key: str((entries.get(key) or {}).get("final_value", "")) for key in keys}
        return {key: value for key, value in values.items() if value}


def why_rejected(
    document: dict[str, Any], spelling: Spelling, admin: EnvoyAdmin, client: httpx.Client
) -> str:
    """The likely reason Envoy rejected ``document``, in the words of Envoy's checks."""
    resources = document.get("resources") or []
    if len(resources) != 1:
        return (
            f"Unexpected RDS resource length: {len(resources)} (a filesystem RDS file holds "
            "exactly one RouteConfiguration)"
        )
    route_config = resources[0] if isinstance(resources[0], dict) else {}
    if spelling.get(route_config, "validate_clusters") is True:
        try:
            unknown = sorted(_clusters_named(route_config, spelling) - admin.clusters(client))
        except (httpx.HTTPError, ValueError):
            unknown = []
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            return f"route: unknown cluster {names} (validate_clusters is set and Envoy has no such cluster)"
    return "Envoy's admin does not say why; its log has a line 'Filesystem config update rejected: ...'"


def _clusters_named(value: Any, spelling: Spelling) -> set[str]:
    """Every cluster a route configuration names (route actions, weighted clusters, mirrors)."""
    names: set[str] = set()
    if isinstance(value, dict):
        cluster = value.get("cluster")
        if isinstance(cluster, str):
            names.add(cluster)
        weighted = spelling.get(value, "weighted_clusters")
        if isinstance(weighted, dict):
            for entry in weighted.get("clusters") or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    names.add(entry["name"])
        for item in value.values():
            names |= _clusters_named(item, spelling)
    elif isinstance(value, list):
        for item in value:
            names |= _clusters_named(item, spelling)
    return names

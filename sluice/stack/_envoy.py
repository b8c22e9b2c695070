"""Envoy on loopback, routed through a watched filesystem RDS file (what the ``envoy`` router edits).

:func:`envoy_bootstrap` is the one bootstrap the local stack uses: a listener whose routes come
from the RDS file, a STATIC cluster per backend, an admin port. :func:`write_routes` writes that
file the way Envoy wants it (temp file + rename); :func:`applied_route_version` reads back which
version Envoy serves.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from sluice.stack._processes import LOOPBACK, ManagedProcess, find_binary, poll_until

__all__ = [
    "INITIAL_VERSION",
    "ROUTE_CONFIG_NAME",
    "EnvoyProxy",
    "applied_route_version",
    "envoy_bootstrap",
    "prefix_routes",
    "routes_text",
    "wait_applied",
    "write_initial_routes",
    "write_routes",
]

ROUTE_CONFIG_NAME = "reviews"
INITIAL_VERSION = "initial"
_HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
)
_ROUTER_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def _socket(port: int) -> dict[str, Any]:
    return {"socket_address": {"address": LOOPBACK, "port_value": port}}


def _cluster(name: str, port: int, health_checked: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(port)}}]}],
        },
    }
    if health_checked:
        # Active checks of the backend's /_health (not counted as its requests): a host starts
        # unhealthy until its first check passes, as a canary whose pods are not ready yet.
        cluster["health_checks"] = [
            {
                "timeout": "0.5s",
                "interval": "0.5s",
                # Envoy checks a cluster that has had no traffic yet only every 60s by default.
                "no_traffic_interval": "0.5s",
                "unhealthy_threshold": 1,
                "healthy_threshold": 1,
                # A fresh connection per check: a stopped backend's open connections may linger.
                "reuse_connection": False,
                "http_health_check": {"path": "/_health"},
            }
        ]
    return cluster


def envoy_bootstrap(
    listener_port: int,
    admin_port: int,
    clusters: Mapping[str, int],
    routes_file: Path,
    health_checked: Collection[str] = (),
) -> dict[str, Any]:
    """Envoy's bootstrap: a listener routed by the RDS file, a cluster per ``name -> port``
    (actively health-checked for the names in ``health_checked``)."""
    connection_manager = {
        "@type": _HCM_TYPE,
        "stat_prefix": ROUTE_CONFIG_NAME,
        "rds": {
            "route_config_name": ROUTE_CONFIG_NAME,
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": str(routes_file.resolve()),
                    # Envoy reloads on a rename into the watched directory, hence the file's own one.
                    "watched_directory": {"path": str(routes_file.parent.resolve())},
                },
            },
        },
        "http_filters": [
            {"name": "envoy.filters.http.router", "typed_config": {"@type": _ROUTER_FILTER_TYPE}}
        ],
    }
    return {
        "node": {"id": "sluice-local", "cluster": "sluice-local"},
        "admin": {"address": _socket(admin_port)},
        # Histograms reach the admin endpoint at each flush (default 5s): 1s keeps p99 readings fresh.
        "stats_flush_interval": "1s",
        # An admin runtime layer, so ``/runtime_modify`` can override a route's runtime keys (the
        # router must notice that what Envoy serves is then not what its RDS file says).
        "layered_runtime": {"layers": [{"name": "admin", "admin_layer": {}}]},
        "static_resources": {
            "listeners": [
                {
                    "name": ROUTE_CONFIG_NAME,
                    "address": _socket(listener_port),
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": connection_manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [_cluster(name, port, name in health_checked) for name, port in clusters.items()],
        },
    }


def routes_text(routes: list[dict[str, Any]], version: str = INITIAL_VERSION) -> str:
    """The RDS file's text: the ``reviews`` RouteConfiguration holding ``routes``."""
    document = {
        "version_info": version,
        "resources": [
            {
                "@type": _ROUTE_CONFIG_TYPE,
                "name": ROUTE_CONFIG_NAME,
                "virtual_hosts": [{"name": ROUTE_CONFIG_NAME, "domains": ["*"], "routes": routes}],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)


def write_routes(path: Path, routes: list[dict[str, Any]], version: str = INITIAL_VERSION) -> None:
    """Write the RDS file: the ``reviews`` RouteConfiguration holding ``routes``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.init")
    temp.write_text(routes_text(routes, version))
    os.replace(temp, path)  # Envoy must never read a half-written file


def write_initial_routes(path: Path, stable_cluster: str) -> None:
    """The route a rollout starts from: everything to the stable cluster."""
    write_routes(path, [{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": stable_cluster}}])


def prefix_routes(clusters: Iterable[str]) -> list[dict[str, Any]]:
    """``/<cluster>/...`` to each cluster: a test decides exactly how many requests each serves."""
    return [{"name": name, "match": {"prefix": f"/{name}/"}, "route": {"cluster": name}} for name in clusters]


def applied_route_version(
    admin_url: str, route_config: str = ROUTE_CONFIG_NAME, client: httpx.Client | None = None
) -> str:
    """The ``version_info`` of the route config Envoy serves now (from its admin config dump)."""
    url = f"{admin_url}/config_dump?resource=dynamic_route_configs"
    response = client.get(url) if client is not None else httpx.get(url, timeout=2.0)
    for config in response.json().get("configs", []):
        if config.get("route_config", {}).get("name") == route_config:
            return str(config.get("version_info", ""))
    return ""


def wait_applied(
    admin_url: str, version: str, route_config: str = ROUTE_CONFIG_NAME, timeout: float = 10.0
) -> None:
    """Until Envoy serves ``version`` of the route config (after the RDS file was written)."""
    poll_until(
        lambda: applied_route_version(admin_url, route_config) == version,
        timeout,
        f"Envoy never loaded version {version} of {route_config}",
    )


class EnvoyProxy(ManagedProcess):
    """Envoy with a listener routed through a watched filesystem RDS file, and an admin port.

    The caller writes the RDS file (``routes_file``) before :meth:`start`.
    """

    def __init__(
        self,
        state_dir: Path,
        listener_port: int,
        admin_port: int,
        clusters: Mapping[str, int],
        health_checked: Collection[str] = (),
    ) -> None:
        self.health_checked = tuple(health_checked)
        self.listener_port = listener_port
        self.admin_port = admin_port
        self.clusters = dict(clusters)
        self.config_dir = state_dir / "envoy"
        # RDS file alone in its directory: Envoy reloads on any rename into the watched directory.
        self.routes_file = self.config_dir / "rds" / "routes.yaml"
        self.bootstrap_file = self.config_dir / "bootstrap.yaml"
        args = [
            find_binary("envoy"), "-c", str(self.bootstrap_file),
            "--disable-hot-restart",  # several Envoys may run at once on one host
            "--log-level", "warn",
        ]  # fmt: skip
        super().__init__("envoy", args, state_dir / "logs" / "envoy.log")

    @property
    def url(self) -> str:
        """The listener (``http://127.0.0.1:PORT/``)."""
        return f"http://{LOOPBACK}:{self.listener_port}/"

    @property
    def admin_url(self) -> str:
        """The admin endpoint (stats, config dump), without a trailing slash."""
        return f"http://{LOOPBACK}:{self.admin_port}"

    def prepare(self) -> None:
        """Write the bootstrap."""
        bootstrap = envoy_bootstrap(
            self.listener_port, self.admin_port, self.clusters, self.routes_file, self.health_checked
        )
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.bootstrap_file.write_text(yaml.safe_dump(bootstrap, sort_keys=False))

    def ready(self) -> bool:
        """Admin ``/ready`` answers 200 (listeners and the first RDS load done)."""
        return httpx.get(f"{self.admin_url}/ready", timeout=1).status_code == 200

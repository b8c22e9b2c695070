"""Envoy through its filesystem RDS file.

Envoy watches the file's directory and reloads when a file is moved onto the path, so every
write goes to a temporary file in the same directory, is fsynced, then renamed over the
original. Only the weights of one route are changed; every other key, route and
RouteConfiguration in the file stays as it was. A ``flock`` on a side file serialises
concurrent editors of one file (several rollouts sharing one RDS file).

The file must lie, symlinks resolved, under a directory the worker manages
(``SLUICE_ROUTES_DIRS``, :meth:`activities.policy.WorkerPolicy.routes_file`), and the router edits
that real file: a symlinked routes file stays a symlink. Errors never quote the file's content
(a spec could name any file there), only where the problem is.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from activities._excerpt import excerpt
from activities.errors import (
    NotAllowed,
    RouteInvalid,
    RouteNotFound,
    RouteNotWritable,
    SluiceError,
    TransientError,
)
from activities.outbound import GuardedTransport, OutboundPolicy
from activities.policy import current_policy
from workflows.models import RouteInput, RouteState, Weights
from workflows.spec import Destination, EnvoyRouterSpec

__all__ = ["EnvoyRouter"]

_ROUTE_CONFIG_TYPE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_APPLY_TIMEOUT_SECONDS = 10.0
# errno values that mean "this file system or directory will not take the write"
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


class EnvoyRouter:
    """Edits one route's ``weighted_clusters`` in an Envoy filesystem RDS file."""

    def __init__(
        self,
        spec: EnvoyRouterSpec,
        stable: Destination,
        canary: Destination,
        *,
        path: Path | None = None,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.spec = spec
        # The real file: writing through a symlink's target keeps the link (a rename onto the
        # link's path would replace it with a regular file).
        self.path = path or Path(os.path.realpath(spec.routes_file))
        self.stable = stable.host
        self.canary = canary.host
        self._outbound = outbound or OutboundPolicy()
        self.stop_waiting = threading.Event()
        """Set when the activity is cancelled: stop waiting for Envoy to confirm a change."""

    @classmethod
    def for_route(cls, spec: EnvoyRouterSpec, route: RouteInput) -> EnvoyRouter:
        """The router for a rollout's route (the entry in :data:`activities.routers.ROUTERS`),
        once the worker's policy allows its routes file and admin address (before any change)."""
        policy = current_policy()
        path = policy.routes_file(spec.routes_file)
        if spec.admin is not None:
            policy.outbound.check("router.admin", spec.admin)
        return cls(spec, route.stable, route.canary, path=path, outbound=policy.outbound)

    @property
    def description(self) -> str:
        return f"envoy:{Path(self.spec.routes_file)}#{self.spec.route_config}"

    # -- Router --------------------------------------------------------------------------

    def get_routes(self) -> RouteState:
        document = self._load()
        return self._state(self._route_action(document), document)

    def set_routes(self, weights: Weights) -> RouteState:
        def edit(action: dict[str, Any]) -> None:
            clusters = self._clusters(action)
            by_name = {entry["name"]: entry for entry in clusters}
            others = sorted(set(by_name) - {self.stable, self.canary})
            if others:
                raise RouteInvalid(
                    f"{self.description}: the route also sends to {', '.join(others)}; "
                    "refusing to change a split sluicegate does not own"
                )
            new_clusters: list[dict[str, Any]] = []
            # Keep the entries' order and any other keys they carry (headers to add, metadata).
            for name in [entry["name"] for entry in clusters] + [self.stable, self.canary]:
                if name in {entry["name"] for entry in new_clusters}:
                    continue
                entry = dict(by_name.get(name, {"name": name}))
                entry["weight"] = weights.stable if name == self.stable else weights.canary
                new_clusters.append(entry)
            action.pop("cluster", None)
            weighted = action.setdefault("weighted_clusters", {})
            weighted["clusters"] = new_clusters
            weighted.pop("total_weight", None)  # deprecated; weights must sum to themselves

        return self._edit(edit)

    def finalize(self) -> RouteState:
        def edit(action: dict[str, Any]) -> None:
            others = sorted({e["name"] for e in self._clusters(action)} - {self.stable, self.canary})
            if others:
                raise RouteInvalid(
                    f"{self.description}: the route also sends to {', '.join(others)}; "
                    "refusing to change a split sluicegate does not own"
                )
            action.pop("weighted_clusters", None)
            action["cluster"] = self.canary

        return self._edit(edit)

    # -- file handling ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        try:
            handle = open(lock_path, "a")  # noqa: SIM115 - held for the whole edit
        except FileNotFoundError:
            raise RouteNotFound(f"{self.description}: directory {self.path.parent} does not exist") from None
        except PermissionError as exc:
            raise RouteNotWritable(f"{self.description}: cannot lock {lock_path}: {exc.strerror}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            raise RouteNotFound(f"{self.description}: routes file {self.path} does not exist") from None
        except (PermissionError, IsADirectoryError) as exc:
            raise RouteInvalid(f"{self.description}: cannot read {self.path}: {exc}") from None
        try:
            document = json.loads(text) if self.path.suffix == ".json" else yaml.safe_load(text)
        except json.JSONDecodeError as exc:
            raise RouteInvalid(self._unparsable("JSON", exc.lineno, exc.colno)) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
            raise RouteInvalid(self._unparsable("YAML", line, column)) from None
        # YAML anchors load as one shared object: copy them apart, or editing one route's
        # weights would also edit every route that aliases it.
        document = _unshared(document)
        if not isinstance(document, dict) or not isinstance(document.get("resources"), list):
            raise RouteInvalid(
                f"{self.description}: {self.path} is not an RDS file (no top-level resources: list)"
            )
        return document

    def _unparsable(self, kind: str, line: int | None, column: int | None) -> str:
        where = f" at line {line}, column {column}" if line is not None else ""
        # the parser's message quotes the offending line: a spec can name any file, so not here
        return f"{self.description}: {self.spec.routes_file} is not valid {kind}{where}"

    def _edit(self, change: Any) -> RouteState:
        with self._locked():
            document = self._load()
            original = copy.deepcopy(document)
            change(self._route_action(document))
            if document != original:
                document["version_info"] = _version_of(document)
                self._write_atomically(document)
        self._wait_until_applied(document)
        return self._state(self._route_action(document), document)

    def _write_atomically(self, document: dict[str, Any]) -> None:
        if self.path.suffix == ".json":
            text = json.dumps(document, indent=2) + "\n"
        else:
            text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        try:
            fd, temp_name = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
        except OSError as exc:
            raise RouteNotWritable(
                f"{self.description}: cannot write in {self.path.parent}: {exc.strerror}"
            ) from None
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(OSError):
                os.chmod(temp_name, self.path.stat().st_mode & 0o777)
            os.replace(temp_name, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
            if isinstance(exc, PermissionError | OSError) and exc.errno in _NOT_WRITABLE:
                raise RouteNotWritable(
                    f"{self.description}: cannot replace {self.path}: {exc.strerror}"
                ) from None
            raise

    # -- navigation ---------------------------------------------------------------------------

    def _route_action(self, document: dict[str, Any]) -> dict[str, Any]:
        configs = [
            r
            for r in document["resources"]
            if isinstance(r, dict) and r.get("name") == self.spec.route_config
        ]
        if not configs:
            names = [excerpt(r.get("name"), 40) for r in document["resources"] if isinstance(r, dict)]
            raise RouteNotFound(
                f"{self.description}: no RouteConfiguration named {self.spec.route_config!r} "
                f"in {self.spec.routes_file} (found {names[:5]})"
            )
        config = configs[0]
        if config.get("@type", _ROUTE_CONFIG_TYPE) != _ROUTE_CONFIG_TYPE:
            raise RouteInvalid(
                f"{self.description}: resource is a {excerpt(config.get('@type'), 60)}, "
                "not a RouteConfiguration"
            )
        hosts = config.get("virtual_hosts") or []
        if self.spec.virtual_host is not None:
            hosts = [h for h in hosts if h.get("name") == self.spec.virtual_host]
        if not hosts:
            raise RouteNotFound(f"{self.description}: no virtual host {self.spec.virtual_host or '(any)'}")
        routes = hosts[0].get("routes") or []
        if self.spec.route is not None:
            routes = [r for r in routes if r.get("name") == self.spec.route]
        if not routes:
            raise RouteNotFound(f"{self.description}: no route {self.spec.route or '(any)'}")
        action = routes[0].get("route")
        if not isinstance(action, dict):
            raise RouteInvalid(
                f"{self.description}: the route has no route action (redirect or direct_response?)"
            )
        return action

    def _clusters(self, action: dict[str, Any]) -> list[dict[str, Any]]:
        if "cluster" in action:
            return [{"name": action["cluster"], "weight": 100}]
        clusters = (action.get("weighted_clusters") or {}).get("clusters")
        if not isinstance(clusters, list):
            raise RouteInvalid(f"{self.description}: the route has neither cluster nor weighted_clusters")
        return clusters

    def _state(self, action: dict[str, Any], document: dict[str, Any]) -> RouteState:
        weights = {e["name"]: int(e.get("weight", 0)) for e in self._clusters(action)}
        return RouteState(
            stable=weights.pop(self.stable, None),
            canary=weights.pop(self.canary, None),
            others=weights,
            version=str(document.get("version_info", "")),
            description=self.description,
        )

    # -- confirmation ---------------------------------------------------------------------------

    def _wait_until_applied(self, document: dict[str, Any]) -> None:
        """With ``admin`` set, return only once Envoy serves the route's clusters and weights.

        The served route is compared, not ``version_info``: Envoy keeps its old version string
        when a file's resources did not change, so a version check could wait forever after a
        hand rewrite, while the weights are what matters.
        """
        if not self.spec.admin:
            return
        wanted = self._weights(self._route_action(document))
        url = self.spec.admin.rstrip("/") + "/config_dump?resource=dynamic_route_configs"
        deadline = time.monotonic() + _APPLY_TIMEOUT_SECONDS
        delay = 0.002
        seen: object = "(unreachable)"
        transport = GuardedTransport(self._outbound, "router.admin")
        with httpx.Client(timeout=2.0, transport=transport) as client:
            while True:
                try:
                    served = _served_route_config(client.get(url).json(), self.spec.route_config)
                    seen = "(no such route config)" if served is None else self._served_weights(served)
                    if seen == wanted:
                        return
                except NotAllowed:
                    raise
                except (httpx.HTTPError, ValueError, SluiceError):
                    pass
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{self.description}: Envoy at {self.spec.admin} still serves "
                        f"{excerpt(seen, 120)} on {self.spec.route_config}, not {wanted}"
                    )
                if self.stop_waiting.wait(delay):  # Envoy applies a renamed file within milliseconds
                    raise TransientError(f"{self.description}: stopped waiting for Envoy (cancelled)")
                delay = min(delay * 2, 0.05)

    def _weights(self, action: dict[str, Any]) -> dict[str, int]:
        return {str(e["name"]): int(e.get("weight", 0)) for e in self._clusters(action)}

    def _served_weights(self, route_config: dict[str, Any]) -> dict[str, int]:
        # Envoy's dump has the same shape as the file (proto JSON, snake_case keys).
        return self._weights(self._route_action({"resources": [route_config]}))


def _served_route_config(config_dump: dict[str, Any], name: str) -> dict[str, Any] | None:
    # With ?resource=dynamic_route_configs each entry of "configs" is one DynamicRouteConfig;
    # without it the entries are RoutesConfigDumps holding a dynamic_route_configs list.
    for config in config_dump.get("configs", []):
        for dynamic in [config, *config.get("dynamic_route_configs", [])]:
            route_config = dynamic.get("route_config", {})
            if route_config.get("name") == name:
                return dict(route_config)
    return None


def _unshared(value: Any) -> Any:
    """A copy of a loaded document in which no dict or list appears twice."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def _version_of(document: dict[str, Any]) -> str:
    body = json.dumps(document.get("resources"), sort_keys=True).encode()
    return "sluice-" + hashlib.sha256(body).hexdigest()[:16]

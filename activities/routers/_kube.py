"""Kubernetes access shared by the ``istio`` and ``gatewayApi`` routers and the workload activity.

- :func:`api_client`: the in-cluster service account when the worker runs in a Pod, else
  ``KUBECONFIG`` / ``~/.kube/config`` (context from ``SLUICE_KUBE_CONTEXT``, else the current one).
- :func:`kube_errors`: turns ``ApiException`` and transport errors into sluicegate's errors:
  404 → :class:`RouteNotFound` naming the object, 403 → :class:`Forbidden` naming the verb and
  resource the identity lacks, 409 → :class:`Conflict`, 429/5xx/timeouts → :class:`TransientError`.
- :class:`CustomObject`: one namespaced custom object, its API version found by discovery
  (``networking.istio.io`` v1, else v1beta1, on clusters that do not serve v1 yet).
- :func:`read_modify_write`: optimistic concurrency — read, change, replace with the read
  ``resourceVersion``; on 409 read again and re-apply the change, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from activities.errors import (
    Conflict,
    Forbidden,
    RouteInvalid,
    RouteNotFound,
    SluiceError,
    TransientError,
)

__all__ = [
    "CONTEXT_ENV",
    "REQUEST_TIMEOUT",
    "CustomObject",
    "ObjectKind",
    "api_client",
    "kube_errors",
    "read_modify_write",
]

CONTEXT_ENV = "SLUICE_KUBE_CONTEXT"
REQUEST_TIMEOUT = (5.0, 30.0)
"""(connect, read) seconds for every call: a hung API server must become a retry, not a hang."""

_SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_WRITE_ATTEMPTS = 5

_clients: dict[tuple[Any, ...], client.ApiClient] = {}
_clients_lock = threading.Lock()


def api_client() -> client.ApiClient:
    """An ``ApiClient`` for the worker's cluster, cached per configuration source.

    In a Pod the service account wins (the in-cluster loader refreshes the projected token
    itself). Elsewhere the kubeconfig is re-read when its path, context or mtime changes, so
    a test or an operator pointing ``KUBECONFIG`` elsewhere takes effect on the next call.
    """
    context = os.environ.get(CONTEXT_ENV) or None
    if os.environ.get("KUBERNETES_SERVICE_HOST") and _SERVICE_ACCOUNT_TOKEN.exists():
        key: tuple[Any, ...] = ("in-cluster",)
    else:
        paths = os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())
        mtimes = tuple(_mtime(p) for p in paths.split(os.pathsep) if p)
        key = ("kubeconfig", paths, context, mtimes)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None:
            return cached
        configuration = client.Configuration()
        try:
            if key[0] == "in-cluster":
                # The kubernetes package ships no type hints for its config loaders.
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=configuration
                )
            else:
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=os.environ.get("KUBECONFIG") or None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError) as exc:
            raise Forbidden(
                f"no Kubernetes credentials: not in a Pod with a service account, and the "
                f"kubeconfig ({key[1] if len(key) > 1 else 'in-cluster'}"
                f"{', context ' + context if context else ''}) cannot be used: {exc}"
            ) from None
        built = client.ApiClient(configuration)
        _clients[key] = built
        return built


def _mtime(path: str) -> float:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return 0.0


def _status_message(exc: ApiException) -> str:
    """The API server's own message from the ``Status`` body, or the HTTP reason."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "no message")


@contextlib.contextmanager
def kube_errors(verb: str, resource: str, what: str) -> Iterator[None]:
    """Map the errors of one API call to sluicegate's errors.

    ``verb`` and ``resource`` are RBAC's words (``update``, ``virtualservices.networking.istio.io``)
    so a 403 says exactly what to grant; ``what`` names the object (``VirtualService default/x``).
    """
    try:
        yield
    except ApiException as exc:
        raise _mapped(exc, verb, resource, what) from None
    except urllib3.exceptions.HTTPError as exc:
        # Connection refused, reset, timed out: the API server may be restarting.
        raise TransientError(f"{what}: cannot reach the Kubernetes API ({verb}): {exc}") from None


def _mapped(exc: ApiException, verb: str, resource: str, what: str) -> SluiceError:
    status = exc.status or 0
    message = _status_message(exc)
    if status == 404:
        return RouteNotFound(f"{what} not found ({message})")
    if status in (401, 403):
        return Forbidden(
            f"{what}: the worker's identity may not {verb} {resource}; grant {verb!r} on "
            f"{resource!r} in the object's namespace (deploy/base/role.yaml). API server: {message}"
        )
    if status == 409:
        return Conflict(f"{what}: changed by someone else while sluicegate wrote it ({message})")
    if status in (400, 422):
        return RouteInvalid(f"{what}: the API server refused the {verb}: {message}")
    if status == 429 or status >= 500 or status == 0:
        return TransientError(f"{what}: {verb} failed with HTTP {status or 'error'}: {message}")
    return RouteInvalid(f"{what}: {verb} failed with HTTP {status}: {message}")


@dataclass(frozen=True)
class ObjectKind:
    """A custom resource: group, plural, Kind and the versions to try, preferred first."""

    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]

    @property
    def resource(self) -> str:
        """``virtualservices.networking.istio.io``, as RBAC and ``kubectl`` name it."""
        return f"{self.plural}.{self.group}"


class CustomObject:
    """One namespaced custom object, read and replaced through ``CustomObjectsApi``."""

    def __init__(
        self, kind: ObjectKind, namespace: str, name: str, api: client.ApiClient | None = None
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.api = client.CustomObjectsApi(api or api_client())
        self._version: str | None = None

    @property
    def what(self) -> str:
        """``VirtualService default/reviews``, for messages."""
        return f"{self.kind.kind} {self.namespace}/{self.name}"

    @property
    def version(self) -> str:
        """The first of the kind's versions the cluster serves (found by discovery, once)."""
        if self._version is None:
            self._version = self._discover()
        return self._version

    def _discover(self) -> str:
        # Discovery is readable by every authenticated identity (system:discovery), so this
        # needs no extra RBAC; a 404 means the group/version is not served.
        for version in self.kind.versions:
            try:
                with kube_errors("get", f"/apis/{self.kind.group}/{version}", self.what):
                    listing = self.api.get_api_resources(
                        self.kind.group, version, _request_timeout=REQUEST_TIMEOUT
                    )
            except RouteNotFound:
                continue
            if any(r.name == self.kind.plural for r in listing.resources or []):
                return version
        raise RouteNotFound(
            f"{self.what}: the cluster does not serve {self.kind.resource} in any of "
            f"{', '.join(self.kind.versions)} — is the CRD installed?"
        )

    def read(self) -> dict[str, Any]:
        """The object as the API server has it now."""
        with kube_errors("get", self.kind.resource, self.what):
            obj = self.api.get_namespaced_custom_object(
                self.kind.group,
                self.version,
                self.namespace,
                self.kind.plural,
                self.name,
                _request_timeout=REQUEST_TIMEOUT,
            )
        if not isinstance(obj, dict):
            raise RouteInvalid(f"{self.what}: the API server answered a {type(obj).__name__}")
        return obj

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT ``obj``; its ``metadata.resourceVersion`` makes a concurrent write a 409."""
        with kube_errors("update", self.kind.resource, self.what):
            written = self.api.replace_namespaced_custom_object(
                self.kind.group,
                self.version,
                self.namespace,
                self.kind.plural,
                self.name,
                obj,
                _request_timeout=REQUEST_TIMEOUT,
            )
        if not isinstance(written, dict):
            raise RouteInvalid(f"{self.what}: the API server answered a {type(written).__name__}")
        return written

    def update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` with optimistic concurrency; the object as written (or as read)."""
        return read_modify_write(self.read, change, self.replace, what=self.what)


def read_modify_write(
    read: Callable[[], dict[str, Any]],
    change: Callable[[dict[str, Any]], None],
    write: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    what: str,
    attempts: int = _WRITE_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Read, ``change`` a copy in place, write it back carrying the read ``resourceVersion``.

    On :class:`Conflict` read again and apply ``change`` to the fresh object, so a concurrent
    writer's edit is kept, not overwritten. No write happens when ``change`` changes nothing
    (idempotent calls cost one GET). After ``attempts`` conflicts the last :class:`Conflict` is
    raised; it is retryable, so Temporal tries the activity again later.
    """
    for attempt in range(1, attempts + 1):
        current = read()
        desired = copy.deepcopy(current)
        change(desired)
        if desired == current:
            return current
        try:
            return write(desired)
        except Conflict as conflict:
            if attempt == attempts:
                raise Conflict(f"{conflict} — gave up after {attempts} attempts") from None
            # Jittered backoff so that two writers in lockstep do not collide again.
            sleep(random.uniform(0, 0.05 * 2**attempt))
    raise AssertionError("unreachable: the loop returns or raises")

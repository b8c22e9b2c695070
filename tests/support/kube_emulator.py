"""A Kubernetes API for tests: kmock's ``KubernetesEmulator`` plus what kmock 0.8 lacks.

kmock 0.8 serves objects over real HTTP, which the ``kubernetes`` client talks to as to a cluster,
but it is too simple for optimistic concurrency (found by trying it):

- no PUT: a replace gets 404;
- ``metadata.resourceVersion`` is never set, and a stale write never gets 409;
- every API version is its own store (created as v1beta1, an object is a 404 as v1);
- ``GET .../deployments/x/scale`` returns the Deployment, not an ``autoscaling/v1`` Scale;
- ``GET /api/v1/namespaces`` crashes while parsing the URL (not fixed here: nothing needs it);
- error bodies do not name the object;
- a reaction injected with ``kmock[...] << 409`` answers 409 *after* the write was applied
  (the emulator applies writes before it looks for reactions).

:class:`KubeEmulator` keeps its own store for the kinds declared with :meth:`KubeEmulator.serve`
(one store per kind, shared by every served version, as the API server does through its storage
version) and serves GET/LIST/POST/PUT/PATCH/DELETE and the Scale subresource itself, with
``resourceVersion`` bumped on every write and a Kubernetes ``Status`` body (naming the object)
for every error. Writes are checked against the CRDs' CEL rules the tests rely on
(:mod:`tests.support.kube_cel`) and refused with 422 ``Invalid``, as a real API server does.
Anything else (discovery, other resources) is kmock's.

Fault injection keeps kmock's DSL: user reactions (``emulator[...] << 500``) are looked at
first, and a request a reaction answers never reaches the store, so an injected 409 does not
apply the write. :meth:`KubeEmulator.fail` and :meth:`KubeEmulator.forbid` register such
reactions with Kubernetes-style bodies; :meth:`KubeEmulator.before_write` runs a callback just
before the next write (a concurrent writer, so that the real resourceVersion check answers 409).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import yaml
from kmock import KubernetesEmulator, ResourceInfo, Server, name, resource
from kmock._internal import rendering  # ReactionMismatchError: how kmock skips a reaction

from tests.support.kube_cel import HTTP_ROUTE_RULES, CelRule, invalid_causes, violations

__all__ = [
    "DEPLOYMENT",
    "GATEWAY_HTTP_ROUTE",
    "ISTIO_DESTINATION_RULE",
    "ISTIO_VIRTUAL_SERVICE",
    "Kind",
    "KubeEmulator",
    "running_emulator",
    "status_body",
    "write_kubeconfig",
]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A resource the emulator stores: group, plural, Kind, served versions, Scale or not."""

    group: str
    plural: str
    kind: str
    versions: tuple[str, ...]
    scale: bool = False

    @property
    def qualified(self) -> str:
        """``virtualservices.networking.istio.io`` (``deployments.apps``), as the API says it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        """``networking.istio.io/v1`` (``v1`` for the core group)."""
        return f"{self.group}/{version}" if self.group else version

    def path(self, version: str, namespace: str, name: str = "") -> str:
        """The object's (or the collection's) URL path."""
        prefix = f"/apis/{self.group}/{version}" if self.group else f"/api/{version}"
        tail = f"/{name}" if name else ""
        return f"{prefix}/namespaces/{namespace}/{self.plural}{tail}"


ISTIO_VIRTUAL_SERVICE = Kind(
    "networking.istio.io", "virtualservices", "VirtualService", ("v1", "v1beta1", "v1alpha3")
)
ISTIO_DESTINATION_RULE = Kind(
    "networking.istio.io", "destinationrules", "DestinationRule", ("v1", "v1beta1", "v1alpha3")
)
GATEWAY_HTTP_ROUTE = Kind("gateway.networking.k8s.io", "httproutes", "HTTPRoute", ("v1", "v1beta1"))
DEPLOYMENT = Kind("apps", "deployments", "Deployment", ("v1",), scale=True)
DEFAULT_KINDS = (ISTIO_VIRTUAL_SERVICE, ISTIO_DESTINATION_RULE, GATEWAY_HTTP_ROUTE, DEPLOYMENT)

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

StoreKey = tuple[str, str, str, str]  # group, plural, namespace, name


def status_body(
    code: int,
    message: str,
    *,
    kind: Kind | None = None,
    name: str | None = None,
    causes: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A ``Status`` object as the API server sends with an error, naming the object."""
    details: dict[str, Any] = {}
    if kind is not None and name is not None:
        # An Invalid status names the Kind, the others the resource, as the API server does.
        details = {"name": name, "group": kind.group, "kind": kind.kind if causes else kind.plural}
    if causes:
        details["causes"] = causes
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": _REASONS.get(code, "Unknown"),
        "details": details,
        "code": code,
    }


class _Refused(Exception):
    """An API error to answer with; raised inside the store's handlers."""

    def __init__(
        self,
        code: int,
        message: str,
        kind: Kind | None = None,
        name: str | None = None,
        causes: list[dict[str, str]] | None = None,
    ):
        super().__init__(message)
        self.body = status_body(code, message, kind=kind, name=name, causes=causes)
        self.code = code


@attrs.define(kw_only=True)
class KubeEmulator(KubernetesEmulator):
    """kmock's emulator with a versioned store, PUT, 409 on stale writes and a Scale subresource.

    Declare the kinds with :meth:`serve` (the default kinds are served unless ``kinds=()``),
    seed objects with :meth:`seed`, read them with :meth:`stored`, edit them as another writer
    would with :meth:`edit`. ``writes`` records every write that reached the store (method,
    path, answer code) — writes answered by an injected reaction never get there.
    """

    kinds: tuple[Kind, ...] = DEFAULT_KINDS
    cel_rules: dict[tuple[str, str], tuple[CelRule, ...]] = attrs.field(
        factory=lambda: {(GATEWAY_HTTP_ROUTE.group, GATEWAY_HTTP_ROUTE.plural): HTTP_ROUTE_RULES}
    )
    """The CRDs' CEL rules checked on every write, by (group, plural); see ``kube_cel``."""
    _served: dict[tuple[str, str], tuple[Kind, tuple[str, ...]]] = attrs.field(factory=dict, init=False)
    _store: dict[StoreKey, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _revision: int = attrs.field(default=1000, init=False)
    _store_lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    _hooks: list[tuple[Kind, str | None, Callable[[KubeEmulator], None]]] = attrs.field(
        factory=list, init=False
    )
    writes: list[tuple[str, str, int]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for kind in self.kinds:
            self.serve(kind)

    # -- test API ----------------------------------------------------------------------------

    def serve(self, kind: Kind, versions: tuple[str, ...] | None = None) -> None:
        """Serve ``kind`` at ``versions`` (default: all of the kind's); also in discovery."""
        served = versions if versions is not None else kind.versions
        previous = self._served.get((kind.group, kind.plural))
        if previous is not None:
            for version in previous[1]:
                self.resources.pop(f"{kind.api_version(version)}/{kind.plural}", None)
        self._served[(kind.group, kind.plural)] = (kind, served)
        for version in served:
            self.resources[f"{kind.api_version(version)}/{kind.plural}"] = ResourceInfo(
                namespaced=True,
                kind=kind.kind,
                singular=kind.kind.lower(),
                verbs={"get", "list", "create", "update", "patch", "delete"},
                subresources={"scale"} if kind.scale else set(),
            )

    def seed(self, kind: Kind, obj: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as if created through the API (name/namespace from its metadata)."""
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        namespace = meta.setdefault("namespace", "default")
        key = (kind.group, kind.plural, namespace, meta["name"])
        with self._store_lock:
            stored = self._created(kind, body, version or kind.versions[0])
            self._store[key] = stored
            return copy.deepcopy(stored)

    def stored(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None."""
        with self._store_lock:
            obj = self._store.get((kind.group, kind.plural, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def edit(
        self, kind: Kind, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Change a stored object as another writer would (bumps ``resourceVersion``)."""
        with self._store_lock:
            key = (kind.group, kind.plural, namespace, name)
            obj = copy.deepcopy(self._store[key])
            change(obj)
            self._store[key] = self._bumped(obj, self._store[key])
            return copy.deepcopy(self._store[key])

    def before_write(self, kind: Kind, hook: Callable[[KubeEmulator], None], name: str | None = None) -> None:
        """Run ``hook(emulator)`` once, just before the next write to ``kind`` (and ``name``)."""
        self._hooks.append((kind, name, hook))

    def fail(
        self,
        method: str,
        kind: Kind,
        status: int,
        *,
        name: str | None = None,
        times: int = 1,
        message: str | None = None,
    ) -> None:
        """Answer the next ``times`` ``method`` requests on ``kind`` with ``status``, untouched.

        The request never reaches the store: an injected 409 or 500 does not apply the write.
        """
        target = f'{kind.qualified} "{name}"' if name else kind.qualified
        text = message or {
            409: f"Operation cannot be fulfilled on {target}: the object has been modified; "
            "please apply your changes to the latest version and try again",
            429: "Too many requests, please try again later.",
            500: f"Internal error occurred: injected fault on {target}",
            503: "the server is currently unable to handle the request",
        }.get(status, f"injected {status} on {target}")
        self._react(method, kind, name, times, status, status_body(status, text, kind=kind, name=name))

    def forbid(
        self,
        verb: str,
        kind: Kind,
        *,
        name: str | None = None,
        user: str = "system:serviceaccount:sluicegate:sluicegate-worker",
        times: int = 1_000_000,
        subresource: str | None = None,
    ) -> None:
        """Answer 403 to ``verb`` (get, update, patch, delete) on ``kind``, as RBAC words it."""
        method = {
            "get": "get",
            "list": "get",
            "update": "put",
            "patch": "patch",
            "delete": "delete",
            "create": "post",
        }[verb]
        plural = f"{kind.plural}/{subresource}" if subresource else kind.plural
        group = f'in API group "{kind.group}"'
        target = f'{kind.qualified} "{name}"' if name else kind.qualified
        text = (
            f'{target} is forbidden: User "{user}" cannot {verb} resource "{plural}" '
            f'{group} in the namespace "default"'
        )
        self._react(method, kind, name, times, 403, status_body(403, text, kind=kind, name=name))

    # -- kmock integration -----------------------------------------------------------------

    def _react(
        self,
        method: str,
        kind: Kind,
        object_name: str | None,
        times: int,
        status: int,
        body: dict[str, Any],
    ) -> None:
        view = self[method.lower(), resource(group=kind.group, plural=kind.plural)]
        if object_name is not None:
            view = view[name(object_name)]
        # kmock reads a leading int as the status and the mapping as the JSON body.
        view[:times] << status << body

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        served = self._kind_of(request)
        if served is None:
            return await super()._handle(request)
        answered = await self._answer_by_reaction(request)
        if answered is not None:
            return answered
        kind, versions = served
        try:
            with self._store_lock:
                code, body = self._serve_stored(kind, versions, request)
        except _Refused as refusal:
            code, body = refusal.code, refusal.body
        if request.method.value in {"POST", "PUT", "PATCH", "DELETE"}:
            self.writes.append((request.method.value, request.url.path, code))
        return aiohttp.web.json_response(body, status=code)

    def _kind_of(self, request: rendering.Request) -> tuple[Kind, tuple[str, ...]] | None:
        ref = request.resource
        if ref is None or ref.group is None or ref.plural is None:
            return None
        return self._served.get((ref.group, ref.plural))

    async def _answer_by_reaction(self, request: rendering.Request) -> aiohttp.web.StreamResponse | None:
        """What a user reaction answers, if one matches (kmock's loop minus its fallbacks)."""
        candidates = [p for p in self._payloads if -math.inf not in p.priorities]
        candidates.sort(key=lambda p: tuple(-x for x in p.priorities))
        for payload in candidates:
            if request in payload._source and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:  # depleted ([:n]) or a mere catcher
                    payload._disabled.set()
                except NotImplementedError:
                    pass
        return None

    # -- the store -------------------------------------------------------------------------

    def _serve_stored(
        self, kind: Kind, versions: tuple[str, ...], request: rendering.Request
    ) -> tuple[int, dict[str, Any]]:
        version = request.resource.version if request.resource else None
        if version not in versions:
            # What the API server says for a group/version/resource it does not serve.
            raise _Refused(404, "the server could not find the requested resource")
        namespace = request.namespace or ""
        method = request.method.value
        obj_name = request.name
        if obj_name is None:
            if method == "GET" and request.params.get("watch") != "true":
                return 200, self._list(kind, version, namespace)
            if method == "POST":
                return 201, self._create(kind, version, namespace, request.data)
            raise _Refused(405, f"{method} on the {kind.qualified} collection is not emulated")
        key = (kind.group, kind.plural, namespace, obj_name)
        if request.subresource == "scale" and kind.scale:
            return self._scale(kind, key, method, request)
        if request.subresource is not None:
            raise _Refused(404, "the server could not find the requested resource")
        if method == "GET":
            return 200, self._as_version(self._existing(kind, key), kind, version)
        if method == "PUT":
            return 200, self._as_version(self._replace(kind, key, request.data), kind, version)
        if method == "PATCH":
            patched = self._patch(kind, key, request.headers.get("Content-Type", ""), request.data)
            return 200, self._as_version(patched, kind, version)
        if method == "DELETE":
            self._existing(kind, key)
            self._run_hooks(kind, obj_name)
            del self._store[key]
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": obj_name, "group": kind.group, "kind": kind.plural},
            }
        raise _Refused(405, f"{method} is not emulated")

    def _existing(self, kind: Kind, key: StoreKey) -> dict[str, Any]:
        obj = self._store.get(key)
        if obj is None:
            raise _Refused(404, f'{kind.qualified} "{key[3]}" not found', kind, key[3])
        return obj

    def _list(self, kind: Kind, version: str, namespace: str) -> dict[str, Any]:
        items = [
            self._as_version(obj, kind, version)
            for (group, plural, ns, _), obj in sorted(self._store.items())
            if (group, plural) == (kind.group, kind.plural) and ns == namespace
        ]
        return {
            "apiVersion": kind.api_version(version),
            "kind": f"{kind.kind}List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": items,
        }

    def _create(self, kind: Kind, version: str, namespace: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not body.get("metadata", {}).get("name"):
            raise _Refused(422, f"{kind.kind} is invalid: metadata.name: Required value")
        body = copy.deepcopy(body)
        body["metadata"]["namespace"] = namespace
        obj_name = body["metadata"]["name"]
        key = (kind.group, kind.plural, namespace, obj_name)
        if key in self._store:
            raise _Refused(409, f'{kind.qualified} "{obj_name}" already exists', kind, obj_name)
        self._validate(kind, obj_name, body)
        self._store[key] = self._created(kind, body, version)
        return self._as_version(self._store[key], kind, version)

    def _replace(self, kind: Kind, key: StoreKey, body: Any) -> dict[str, Any]:
        current = self._existing(kind, key)
        if not isinstance(body, dict):
            raise _Refused(400, "the body of a replace must be a JSON object")
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, key[3]):
            raise _Refused(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({key[3]})",
            )
        self._run_hooks(kind, key[3])
        current = self._existing(kind, key)  # a hook may have changed it
        self._check_version(kind, key, meta.get("resourceVersion"), current)
        new = copy.deepcopy(body)
        new.setdefault("metadata", {})
        self._validate(kind, key[3], new)
        self._store[key] = self._bumped(new, current)
        return self._store[key]

    def _patch(self, kind: Kind, key: StoreKey, content_type: str, patch: Any) -> dict[str, Any]:
        self._existing(kind, key)
        self._run_hooks(kind, key[3])
        current = self._existing(kind, key)
        media = content_type.split(";")[0].strip()
        if media == "application/json-patch+json":
            if not isinstance(patch, list):
                raise _Refused(400, "a JSON patch must be a list of operations")
            new = _json_patch(current, patch)
        elif media in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            # Strategic merge differs from a merge patch only for lists with merge keys, which
            # the objects sluicegate edits never patch (it replaces whole objects instead).
            if not isinstance(patch, dict):
                raise _Refused(400, f"a {media} body must be a JSON object")
            self._check_version(kind, key, (patch.get("metadata") or {}).get("resourceVersion"), current)
            new = _merge_patch(current, patch)
        else:
            raise _Refused(415, f"the body of the request was in an unknown format: {media}")
        self._validate(kind, key[3], new)
        self._store[key] = self._bumped(new, current)
        return self._store[key]

    def _scale(
        self, kind: Kind, key: StoreKey, method: str, request: rendering.Request
    ) -> tuple[int, dict[str, Any]]:
        current = self._existing(kind, key)
        if method == "GET":
            return 200, _scale_of(current)
        if method not in ("PUT", "PATCH"):
            raise _Refused(405, f"{method} on {kind.plural}/scale is not emulated")
        scale = _scale_of(current)
        body = request.data
        media = request.headers.get("Content-Type", "").split(";")[0].strip()
        if method == "PATCH" and media == "application/json-patch+json":
            scale = _json_patch(scale, body if isinstance(body, list) else [])
        elif isinstance(body, dict):
            self._check_version(kind, key, (body.get("metadata") or {}).get("resourceVersion"), current)
            scale = _merge_patch(scale, body) if method == "PATCH" else body
        else:
            raise _Refused(400, "a Scale must be a JSON object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise _Refused(
                422,
                f'Scale.autoscaling "{key[3]}" is invalid: spec.replicas: must be >= 0',
                kind,
                key[3],
            )
        self._run_hooks(kind, key[3])
        new = copy.deepcopy(self._existing(kind, key))
        new.setdefault("spec", {})["replicas"] = replicas
        # No controller runs here: report the new size at once, as if the pods went away.
        new.setdefault("status", {}).update({"replicas": replicas, "readyReplicas": replicas})
        self._store[key] = self._bumped(new, current)
        return 200, _scale_of(self._store[key])

    def _validate(self, kind: Kind, obj_name: str, obj: dict[str, Any]) -> None:
        """422 ``Invalid`` when a CEL rule of the kind's CRD does not hold, in the API server's words."""
        found = violations(obj, self.cel_rules.get((kind.group, kind.plural), ()))
        if found:
            tail, causes = invalid_causes(found)
            message = f'{kind.kind}.{kind.group} "{obj_name}" is invalid: {tail}'
            raise _Refused(422, message, kind, obj_name, causes)

    def _run_hooks(self, kind: Kind, obj_name: str) -> None:
        due = [h for h in self._hooks if h[0] == kind and h[1] in (None, obj_name)]
        for hook in due:
            self._hooks.remove(hook)
            hook[2](self)

    def _check_version(self, kind: Kind, key: StoreKey, sent: Any, current: dict[str, Any]) -> None:
        if sent is not None and str(sent) != current["metadata"]["resourceVersion"]:
            raise _Refused(
                409,
                f'Operation cannot be fulfilled on {kind.qualified} "{key[3]}": the object has '
                "been modified; please apply your changes to the latest version and try again",
                kind,
                key[3],
            )

    # -- metadata bookkeeping ----------------------------------------------------------------

    def _next_revision(self) -> str:
        self._revision += 1
        return str(self._revision)

    def _created(self, kind: Kind, body: dict[str, Any], version: str) -> dict[str, Any]:
        body["apiVersion"] = kind.api_version(version)
        body["kind"] = kind.kind
        meta = body.setdefault("metadata", {})
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=self._next_revision(),
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            generation=1,
        )
        return body

    def _bumped(self, new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
        meta = new.setdefault("metadata", {})
        # The server owns these: a client cannot change them through a write.
        for field in ("uid", "creationTimestamp", "namespace", "name"):
            meta[field] = old["metadata"][field]
        meta["generation"] = old["metadata"].get("generation", 1) + (
            1 if new.get("spec") != old.get("spec") else 0
        )
        meta["resourceVersion"] = self._next_revision()
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        return new

    @staticmethod
    def _as_version(obj: dict[str, Any], kind: Kind, version: str) -> dict[str, Any]:
        served = copy.deepcopy(obj)
        served["apiVersion"] = kind.api_version(version)
        return served


def _scale_of(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": (deployment.get("spec") or {}).get("replicas", 1)},
        "status": {
            "replicas": (deployment.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, ``null`` deletes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _json_patch(target: dict[str, Any], operations: list[Any]) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/test: enough for what a client sends to these objects."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        kind = op["op"]
        try:
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                elif kind == "remove":
                    del parent[index]
                elif kind == "replace":
                    parent[index] = op["value"]
                elif kind == "test" and parent[index] != op["value"]:
                    raise _Refused(422, f"the test of {op['path']} failed")
            elif kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            elif kind == "test" and parent.get(last) != op["value"]:
                raise _Refused(422, f"the test of {op['path']} failed")
        except (KeyError, IndexError, ValueError) as exc:
            raise _Refused(422, f"the JSON patch cannot apply at {op['path']}: {exc}") from None
    return doc


def write_kubeconfig(path: Path, server_url: str, *, namespace: str = "default") -> Path:
    """A kubeconfig with one context, ``kmock``, pointing at the emulator (plain HTTP)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": server_url.rstrip("/")}}],
        "users": [{"name": "kmock", "user": {"token": "kmock-test-token"}}],
        "contexts": [
            {
                "name": "kmock",
                "context": {"cluster": "kmock", "user": "kmock", "namespace": namespace},
            }
        ],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def running_emulator(**kwargs: Any) -> AsyncIterator[KubeEmulator]:
    """Serve a :class:`KubeEmulator` on 127.0.0.1 (a free port) until the block ends.

    The ``kubernetes`` client is blocking: call it through ``asyncio.to_thread`` so that this
    loop can answer.
    """
    async with KubeEmulator(**kwargs) as emulator, Server(emulator, host="127.0.0.1"):
        await asyncio.sleep(0)
        yield emulator


def json_dumps(obj: Any) -> str:
    """Stable JSON for comparing objects in assertion messages."""
    return json.dumps(obj, indent=1, sort_keys=True)

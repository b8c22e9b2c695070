"""The ``router`` section of a spec and the destinations it splits traffic between.

Each router kind is one spec class that declares its kind and its traits once; a new kind is one
more class in :data:`RouterSpec` (``activities.routers`` registers how to build it).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import Field, field_validator, model_validator

from workflows._base import _SpecModel
from workflows._durations import Duration
from workflows._fields import DnsName, HttpUrl

__all__ = [
    "ROUTER_KINDS",
    "ROUTER_SPECS",
    "Destination",
    "DryRunRouterSpec",
    "EnvoyRouterSpec",
    "GatewayApiRouterSpec",
    "IstioRouterSpec",
    "RouterSpec",
    "RouterSpecBase",
    "RouterTraits",
    "kinds_with",
]


class Destination(_SpecModel):
    """Where one version's traffic goes.

    Istio: ``host`` (+ optional ``subset``); Gateway API: ``host`` is the backendRef Service name
    (+ ``port``); Envoy: ``host`` is the cluster name.
    """

    host: str = Field(min_length=1)
    subset: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    deployment: DnsName | None = None
    """Canary, Kubernetes routers: the Deployment that must be Available, its pods updated,
    before the canary gets its first traffic."""
    wait_healthy: bool = False
    """Canary, envoy router with ``admin``: wait until Envoy's canary cluster has a healthy host."""
    ready_timeout: Duration | None = None
    """Canary: how long to wait for it to be ready before giving up (``CanaryNotReady``)."""

    def label(self) -> str:
        """A short human name: ``reviews-v2`` or ``reviews/v2``."""
        return f"{self.host}/{self.subset}" if self.subset else self.host


@dataclass(frozen=True)
class RouterTraits:
    """What a router kind can do; each router spec declares its own, and validation reads them."""

    subsets: bool = False
    """Destinations may name a subset (Istio DestinationRule subsets)."""
    ports: bool = False
    """Destinations may name a port (Gateway API Service backendRefs)."""
    kubernetes: bool = False
    """The route lives in a Kubernetes namespace, so ``removeOld`` may retire a Deployment there."""


class RouterSpecBase(_SpecModel):
    """A ``router`` section: a ``kind: Literal[...]`` field (the discriminator) and its traits."""

    traits: ClassVar[RouterTraits] = RouterTraits()

    def route_identity(self, namespace: str, service: str) -> str:
        """What names the route this section drives, whoever drives it: at most one running
        rollout may own it (``workflows.ownership``)."""
        raise NotImplementedError

    @classmethod
    def kind_name(cls) -> str:
        """The ``kind`` this section is written with (its ``Literal``'s one value)."""
        (kind,) = get_args(cls.model_fields["kind"].annotation)
        return str(kind)


class IstioRouterSpec(RouterSpecBase):
    """Istio VirtualService: weights of ``spec.http[route].route[]``."""

    traits = RouterTraits(subsets=True, kubernetes=True)
    kind: Literal["istio"]
    virtual_service: DnsName
    route: str | None = None
    """``name`` of the http route in the VirtualService."""
    route_index: int | None = Field(default=None, ge=0)
    """Position of the http route in ``spec.http[]`` (for routes without a name). With neither
    ``route`` nor ``routeIndex``: the one http route that routes to the stable (see the README)."""

    @field_validator("route", mode="before")
    @classmethod
    def _route_is_a_name(cls, value: object) -> object:
        # YAML reads `route: 1` as a number: say where a position goes instead of "not a string".
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(
                f"names an http route (its name); to pick an unnamed route by position use "
                f"routeIndex: {value}, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> IstioRouterSpec:
        if self.route is not None and self.route_index is not None:
            raise ValueError("set route (a name) or routeIndex (a position), not both")
        return self

    def route_identity(self, namespace: str, service: str) -> str:
        # The default and routeIndex 0 name the same route in the common one-route case; a name
        # is kept as written (which index it is cannot be known without reading the object).
        selector = self.route if self.route is not None else str(self.route_index or "")
        return f"istio:{namespace}/virtualservices/{self.virtual_service}#{selector}"


class GatewayApiRouterSpec(RouterSpecBase):
    """Gateway API HTTPRoute: weights of ``spec.rules[rule].backendRefs[]``."""

    traits = RouterTraits(ports=True, kubernetes=True)
    kind: Literal["gatewayApi"]
    http_route: DnsName
    rule: int | None = Field(default=None, ge=0)
    """Index into ``spec.rules[]``; default: the one rule whose backendRefs route to the
    stable (see the README). Specs written when the default was ``0`` keep working."""

    def route_identity(self, namespace: str, service: str) -> str:
        return f"gatewayApi:{namespace}/httproutes/{self.http_route}#{'' if self.rule is None else self.rule}"


class EnvoyRouterSpec(RouterSpecBase):
    """A local Envoy fed by a filesystem RDS file that it watches."""

    kind: Literal["envoy"]
    routes_file: str = Field(min_length=1)
    """Path of the RDS file (a v3 ``resources:`` list of RouteConfigurations), on the worker."""
    route_config: str = Field(min_length=1)
    """Name of the RouteConfiguration whose route is edited."""
    virtual_host: str | None = None
    """Virtual host name inside it; default: the first."""
    route: str | None = None
    """Route name inside the virtual host; default: the first."""
    admin: HttpUrl | None = None
    """Envoy admin URL; when set, a weight change returns only once Envoy reports it applied."""

    def route_identity(self, namespace: str, service: str) -> str:
        # The path as written, normalised (no I/O here: symlinks are the activities' business).
        path = posixpath.normpath(self.routes_file)
        return f"envoy:{path}#{self.route_config}/{self.virtual_host or ''}/{self.route or ''}"


class DryRunRouterSpec(RouterSpecBase):
    """Changes nothing; records what it would do (rehearsals, benchmarks)."""

    kind: Literal["dryRun"]

    def route_identity(self, namespace: str, service: str) -> str:
        return f"dryRun:{namespace}/{service}"


RouterSpec = Annotated[
    IstioRouterSpec | GatewayApiRouterSpec | EnvoyRouterSpec | DryRunRouterSpec,
    Field(discriminator="kind"),
]
"""Every router kind: a new kind is one more spec class here (activities.routers builds it)."""
ROUTER_SPECS: tuple[type[RouterSpecBase], ...] = get_args(get_args(RouterSpec)[0])
ROUTER_KINDS = tuple(spec.kind_name() for spec in ROUTER_SPECS)


def kinds_with(trait: Literal["subsets", "ports", "kubernetes"]) -> str:
    """``istio or gatewayApi``: the kinds whose traits have ``trait``, for messages."""
    return " or ".join(spec.kind_name() for spec in ROUTER_SPECS if getattr(spec.traits, trait))

"""Gateway API ``HTTPRoute``: the weights of ``spec.rules[<rule>].backendRefs[]``.

Destinations are Service backendRefs in the route's namespace: ``{host: <Service name>, port:
<port>}``. In the Gateway API a backendRef without ``weight`` weighs 1 and weights are
proportions, not percentages; this router always writes explicit weights that sum to 100 and
reads any other sum as proportions. Writes go through :meth:`CustomObject.update` (optimistic
concurrency) and touch only the ``weight`` of the two refs (and add a missing one); filters,
matches, other rules stay.

Which rule: ``router.rule`` when given, else the one rule whose backendRefs name the stable
(see :meth:`KubernetesRoute._default_index`). Refused, naming the rule and the backendRef: a
rule that redirects (a ``RequestRedirect`` filter: the CRD forbids backendRefs beside it), and a
backendRef sluicegate cannot edit (another kind, another namespace) that takes traffic or carries
the stable's or canary's name.
"""

from __future__ import annotations

from typing import Any

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import ObjectKind
from activities.routers._kube_route import KubernetesRoute, WeightedList
from workflows.spec import Destination, GatewayApiRouterSpec

__all__ = ["HTTP_ROUTE", "GatewayApiRouter"]

HTTP_ROUTE = ObjectKind("gateway.networking.k8s.io", "httproutes", "HTTPRoute", ("v1", "v1beta1"))
SUPPORTED = "only Service backendRefs in the route's namespace are supported"


class GatewayApiRouter(KubernetesRoute[GatewayApiRouterSpec]):
    """Shifts weights between two Service backendRefs of one rule of an HTTPRoute."""

    object_kind = HTTP_ROUTE
    _rule: int | None = None
    """The rule in use once the route was read (the spec's, or the default one)."""

    @property
    def object_name(self) -> str:
        """The HTTPRoute's name."""
        return self.spec.http_route

    @property
    def description(self) -> str:
        """``gatewayApi:default/reviews#rule0`` (without ``#ruleN`` until the rule is known)."""
        rule = self._rule if self._rule is not None else self.spec.rule
        where = "" if rule is None else f"#rule{rule}"
        return f"gatewayApi:{self.namespace}/{self.spec.http_route}{where}"

    # -- navigation ---------------------------------------------------------------------------

    def _lists(self, obj: dict[str, Any]) -> list[WeightedList]:
        rules = (obj.get("spec") or {}).get("rules")
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            rules = []
        if self.spec.rule is None:
            index = self._default_index([_refs(rule) for rule in rules], "rule", "rule")
        elif self.spec.rule < len(rules):
            index = self.spec.rule
        else:
            raise RouteNotFound(
                f"{self.description}: HTTPRoute {self.namespace}/{self.spec.http_route} has "
                f"{len(rules)} rule(s); rule {self.spec.rule} does not exist"
            )
        self._rule = index
        rule = rules[index]
        if any(f.get("type") == "RequestRedirect" or "requestRedirect" in f for f in _filters(rule)):
            raise RouteInvalid(
                f"{self.description}: rule {index} answers with a redirect (RequestRedirect filter), "
                "so it has no backendRefs to shift, and the HTTPRoute CRD forbids adding them beside "
                f"a redirect (the API server answers 422); {self._rule_hint(rules)}"
            )
        refs = rule.setdefault("backendRefs", [])
        if not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs):
            raise RouteInvalid(f"{self.description}: rule {index} backendRefs is not a list of references")
        self._refuse_unsupported(index, refs)
        return [WeightedList(f"rule {index}", refs, rule)]

    def _rule_hint(self, rules: list[dict[str, Any]]) -> str:
        routing = [i for i, rule in enumerate(rules) if any(self._names(r, self.stable) for r in _refs(rule))]
        if routing:
            which = ", ".join(map(str, routing))
            return f"rule {which} routes to {self.stable.host}: set router.rule to it, or leave rule out"
        return f"no rule routes to {self.stable.host}; set router.rule to the rule that should"

    def _refuse_unsupported(self, index: int, refs: list[dict[str, Any]]) -> None:
        """A ref of another kind or namespace that takes traffic, or that has the stable's or the
        canary's name, is refused here with its reason: counted as a stranger it would read as
        "also sends to reviews-v1" about the user's own stable."""
        for position, (ref, share) in enumerate(zip(refs, self._entry_weights(refs), strict=True)):
            reason = self._unsupported(ref)
            if reason is None:
                continue
            role = next(
                (role for role, dest in (("stable", self.stable), ("canary", self.canary))
                 if ref.get("name") == dest.host),
                None,
            )  # fmt: skip
            if role is None and share == 0:
                continue  # weight 0 sends nothing: it may stay, like any backend at 0
            named = f" (it has the {role}'s name)" if role else f" and takes {share}% of the rule"
            raise RouteInvalid(
                f"{self.description}: rule {index}, backendRef {position} "
                f"({self._entry_label(ref)}) {reason}{named}: {SUPPORTED}"
            )

    def _unsupported(self, ref: dict[str, Any]) -> str | None:
        group, kind = ref.get("group", ""), ref.get("kind", "Service")
        if group != "" or kind != "Service":
            return f"is a {kind} of API group {group!r}, not a Service"
        namespace = ref.get("namespace", self.namespace)
        if namespace != self.namespace:
            return f"is in namespace {namespace}, not the route's namespace {self.namespace}"
        return None

    def _matches(self, ref: dict[str, Any], dest: Destination) -> bool:
        return (
            self._unsupported(ref) is None
            and ref.get("name") == dest.host
            and (dest.port is None or ref.get("port") == dest.port)
        )

    def _names(self, ref: dict[str, Any], dest: Destination) -> bool:
        # The default rule is the one the user meant, even when its ref is of a kind this router
        # refuses: the refusal then explains itself instead of "no rule routes to reviews-v1".
        return ref.get("name") == dest.host

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
        if entry.get("group", "") != "" or entry.get("kind", "Service") != "Service":
            name = f"{entry.get('kind', 'Service')} {name}"
        if entry.get("namespace", self.namespace) != self.namespace:
            name = f"{entry['namespace']}/{name}"
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

    # -- warnings -------------------------------------------------------------------------------

    def _warnings(self, chosen: WeightedList) -> list[str]:
        """A ``RequestMirror`` to the canary: it copies requests the canary may also serve, so
        after removeOld the canary gets every request twice."""
        filters = [*_filters(chosen.holder), *(f for ref in chosen.entries for f in _filters(ref))]
        warnings = []
        for mirror in (f.get("requestMirror") for f in filters if f.get("type") == "RequestMirror"):
            target = (mirror or {}).get("backendRef") or {}
            percent = _mirror_percent(mirror or {})
            if percent > 0 and self._unsupported(target) is None and target.get("name") == self.canary.host:
                warnings.append(
                    f"{chosen.where} mirrors {percent:g}% of its requests to {self.canary.host}, the "
                    "canary (RequestMirror filter): the canary also gets copies of requests, and after "
                    "removeOld every request twice; remove the mirror before promoting"
                )
        return warnings


def _refs(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in rule.get("backendRefs") or [] if isinstance(r, dict)]


def _filters(holder: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in holder.get("filters") or [] if isinstance(f, dict)]


def _mirror_percent(mirror: dict[str, Any]) -> float:
    """``percent``, or ``fraction`` as a percentage; neither: every request is mirrored."""
    if mirror.get("percent") is not None:
        return float(mirror["percent"])
    fraction = mirror.get("fraction")
    if isinstance(fraction, dict) and fraction.get("denominator", 100):
        return 100.0 * float(fraction.get("numerator", 0)) / float(fraction.get("denominator", 100))
    return 100.0

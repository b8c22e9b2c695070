"""Which route of a RouteConfiguration a spec selects, and in which shape its requests are split.

Envoy takes the first route that matches, so a route behind another that matches the same
requests (the same match, or a bare prefix covering its path) is never reached, and one behind a
``runtime_fraction`` route gets only what that route leaves: both are refused rather than edited,
except Envoy's documented traffic shift (two back-to-back routes with the same match, the first
with ``runtime_fraction``), which is driven as one :class:`ShiftPair`. Only the cases that can be
decided from two matches alone are detected (the same match, or a bare prefix covering a path).
"""

from __future__ import annotations

import re
from typing import Any

from activities._excerpt import excerpt
from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._envoy_split import Selection, ShiftPair, Target, WeightedRoute
from activities.routers._rds_file import Spelling

__all__ = ["find_target"]

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def find_target(route_config: dict[str, Any], selection: Selection, sp: Spelling) -> Target:
    """The selected route's shape, or RouteNotFound / RouteInvalid saying why it cannot be driven."""
    hosts = [h for h in sp.get(route_config, "virtual_hosts") or [] if isinstance(h, dict)]
    if selection.virtual_host is not None:
        hosts = [h for h in hosts if h.get("name") == selection.virtual_host]
    if not hosts:
        raise RouteNotFound(f"{selection.label}: no virtual host {selection.virtual_host or '(any)'}")
    routes = [r for r in hosts[0].get("routes") or [] if isinstance(r, dict)]
    chosen = [i for i, r in enumerate(routes) if selection.route is None or r.get("name") == selection.route]
    if not chosen:
        raise RouteNotFound(f"{selection.label}: no route {selection.route or '(any)'}")
    index = chosen[0]
    route, match = routes[index], _match(routes[index], sp)
    for earlier in routes[:index]:
        if not _covers(_match(earlier, sp), match):
            continue
        if not _has_fraction(earlier, sp):
            raise RouteInvalid(
                f"{selection.label}: {_named(route, routes)} is never reached: {_named(earlier, routes)} "
                "before it matches every request it would (Envoy takes the first route that matches)"
            )
        if earlier is routes[index - 1] and _match(earlier, sp) == match and not _has_fraction(route, sp):
            return _pair(selection, sp, earlier, route, routes)
        raise RouteInvalid(
            f"{selection.label}: {_named(route, routes)} gets only the requests that "
            f"{_named(earlier, routes)} before it leaves (runtime_fraction); only two back-to-back "
            "routes with the same match, the first with runtime_fraction, can be shifted"
        )
    if _has_fraction(route, sp):
        after = routes[index + 1] if index + 1 < len(routes) else None
        if after is None or _match(after, sp) != match or _has_fraction(after, sp):
            raise RouteInvalid(
                f"{selection.label}: {_named(route, routes)} takes only a runtime_fraction share of "
                "its requests and the route after it is not the same match taking the rest; only "
                "two back-to-back routes with the same match, the first with runtime_fraction, can "
                "be shifted"
            )
        return _pair(selection, sp, route, after, routes)
    return WeightedRoute(selection, sp, _action(selection, route, routes, sp))


def _pair(
    selection: Selection, sp: Spelling, first: dict[str, Any], second: dict[str, Any], routes: list[Any]
) -> ShiftPair:
    for route in (first, second):
        action = _action(selection, route, routes, sp)
        if not isinstance(sp.get(action, "cluster"), str):
            raise RouteInvalid(
                f"{selection.label}: {_named(route, routes)} is half of a runtime_fraction traffic "
                "shift but does not send to a single cluster; only `cluster` routes can be shifted "
                "that way"
            )
    return ShiftPair(selection, sp, first, second)


def _action(selection: Selection, route: dict[str, Any], routes: list[Any], sp: Spelling) -> dict[str, Any]:
    action = sp.get(route, "route")
    if not isinstance(action, dict):
        raise RouteInvalid(
            f"{selection.label}: {_named(route, routes)} has no route action (redirect or direct_response?)"
        )
    return action


def _named(route: dict[str, Any], routes: list[Any]) -> str:
    name = route.get("name")
    return f"route {excerpt(name, 80, redact=False)!r}" if name else f"route #{routes.index(route)} (unnamed)"


def _has_fraction(route: dict[str, Any], sp: Spelling) -> bool:
    return sp.get(sp.get(route, "match") or {}, "runtime_fraction") is not None


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {_SNAKE.sub("_", str(key)).lower(): _snake(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_snake(item) for item in value]
    return value


def _match(route: dict[str, Any], sp: Spelling) -> dict[str, Any]:
    """The route's match, spelled one way, without its runtime_fraction and defaults."""
    match = _snake(sp.get(route, "match") or {})
    match.pop("runtime_fraction", None)
    if match.get("case_sensitive") is True:
        del match["case_sensitive"]
    return dict(match)


def _covers(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether a route matching ``earlier`` takes every request ``later`` would match (the cases
    that can be decided from the two matches alone: the same match, or a bare prefix)."""
    if earlier == later:
        return True
    if set(earlier) != {"prefix"}:
        return False
    prefix = earlier["prefix"]
    if prefix in ("", "/"):
        return True
    path = later.get("prefix", later.get("path", later.get("path_separated_prefix")))
    return isinstance(path, str) and path.startswith(prefix)

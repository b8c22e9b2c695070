"""The CRDs' CEL rules (``x-kubernetes-validations``) that the tests rely on, as Python checks.

JSON Schema validators skip CEL, but a real API server evaluates it on every write and answers
422 ``Invalid``: a router that writes backendRefs into a redirecting HTTPRoute rule passes a
schema check and still fails in a cluster. :class:`~tests.support.kube_emulator.KubeEmulator`
runs these checks on every create, replace and patch, and answers as the API server does.

Each :class:`CelRule` carries its expression and message exactly as the CRD schema in
``tests/schemas`` has them (``tests/activities/routers/test_kube_cel.py`` checks they are still
there), so a schema update that changes a rule fails loudly instead of leaving the emulator
enforcing an old one. Only the rules the tests rely on are here; the others are not evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["HTTP_ROUTE_RULES", "CelRule", "invalid_causes", "violations"]


@dataclass(frozen=True)
class CelRule:
    """One ``x-kubernetes-validations`` entry and a Python check that means the same."""

    path: tuple[str, ...]
    """Where the rule sits in an object (``*``: every item of a list): ``("spec", "rules", "*")``."""
    rule: str
    """The CEL expression, verbatim from the CRD schema."""
    message: str
    holds: Callable[[dict[str, Any]], bool]
    """Whether the value at ``path`` satisfies the rule (as CEL sees it, after defaulting)."""


def _no_redirect_beside_backend_refs(rule: dict[str, Any]) -> bool:
    if rule.get("backendRefs"):  # has(self.backendRefs) && size(self.backendRefs) > 0
        return all(not (isinstance(f, dict) and "requestRedirect" in f) for f in rule.get("filters") or [])
    return True


def _service_ref_has_port(ref: dict[str, Any]) -> bool:
    # The API server defaults group to "" and kind to Service before CEL runs.
    if ref.get("group", "") == "" and ref.get("kind", "Service") == "Service":
        return "port" in ref
    return True


_PORT_RULE = "(size(self.group) == 0 && self.kind == 'Service') ? has(self.port) : true"

HTTP_ROUTE_RULES: tuple[CelRule, ...] = (
    CelRule(
        ("spec", "rules", "*"),
        "(has(self.backendRefs) && size(self.backendRefs) > 0) ? (!has(self.filters) || "
        "self.filters.all(f, !has(f.requestRedirect))): true",
        "RequestRedirect filter must not be used together with backendRefs",
        _no_redirect_beside_backend_refs,
    ),
    CelRule(
        ("spec", "rules", "*", "backendRefs", "*"),
        _PORT_RULE,
        "Must have port for Service reference",
        _service_ref_has_port,
    ),
    *(
        CelRule((*where, "filters", "*", "requestMirror", "backendRef"), _PORT_RULE,
                "Must have port for Service reference", _service_ref_has_port)
        for where in (("spec", "rules", "*"), ("spec", "rules", "*", "backendRefs", "*"))
    ),
)  # fmt: skip
"""The HTTPRoute rules the router tests rely on (Gateway API v1.6.1 standard channel)."""


def violations(obj: dict[str, Any], rules: tuple[CelRule, ...]) -> list[tuple[str, str]]:
    """``(field, message)`` for every place in ``obj`` where one of ``rules`` does not hold;
    ``field`` is written as the API server writes it (``spec.rules[0].backendRefs[1]``)."""
    found = []
    for rule in rules:
        for field, value in _values_at(obj, rule.path, ""):
            if isinstance(value, dict) and not rule.holds(value):
                found.append((field, rule.message))
    return found


def invalid_causes(found: list[tuple[str, str]]) -> tuple[str, list[dict[str, str]]]:
    """The ``Status`` message tail and ``details.causes`` of a 422 for ``found``."""
    causes = [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "object": {message}', "field": field}
        for field, message in found
    ]
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    return (parts[0] if len(parts) == 1 else f"[{', '.join(parts)}]"), causes


def _values_at(node: Any, path: tuple[str, ...], field: str) -> Iterator[tuple[str, Any]]:
    if not path:
        yield field, node
        return
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _values_at(item, rest, f"{field}[{index}]")
    elif isinstance(node, dict) and head in node:
        yield from _values_at(node[head], rest, f"{field}.{head}" if field else head)

"""What one route of an Envoy RouteConfiguration serves, and how to change it.

A route's requests are split in one of two shapes (which one a route has, and whether it can be
driven at all, is decided by :func:`activities.routers._envoy_match.find_target`):

- one route whose action is a single ``cluster`` or ``weighted_clusters`` (weights are shares of
  their sum: Envoy 1.40 ignores the deprecated ``total_weight``, older Envoys require the sum to
  equal it, so writes keep the sum at ``total_weight`` when the file has one);
- Envoy's documented traffic shift: two back-to-back routes with the same match, the first with
  ``runtime_fraction`` (its ``default_value`` is the first route's share; the rest falls through
  to the second route). Both send to a single ``cluster``.

Shares are :class:`~fractions.Fraction` so comparisons with what Envoy serves are exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from activities._excerpt import excerpt
from activities.errors import RouteInvalid
from activities.routers._rds_file import Spelling
from workflows.models import Weights

__all__ = ["Selection", "Shares", "ShiftPair", "Target", "WeightedRoute", "nonzero", "percent"]

Shares = dict[str, Fraction]
"""Cluster (or a label for a destination without a name) -> its share of the route's requests."""

_DENOMINATORS: Mapping[object, int] = {
    "HUNDRED": 100, "TEN_THOUSAND": 10_000, "MILLION": 1_000_000, 0: 100, 1: 10_000, 2: 1_000_000,
}  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """Which route: the virtual host and route names (None: the first), and a label for errors."""

    virtual_host: str | None
    route: str | None
    label: str


def percent(share: Fraction) -> int:
    """A share as a whole percentage that never rounds traffic away: above 0 is at least 1,
    below all is at most 99."""
    value = round(share * 100)
    if share > 0:
        value = max(value, 1)
    if share < 1:
        value = min(value, 99)
    return int(value)


def nonzero(shares: Shares) -> Shares:
    """The destinations that receive traffic."""
    return {name: share for name, share in shares.items() if share > 0}


class Target(ABC):
    """The route (or pair of routes) whose split sluicegate drives."""

    def __init__(self, selection: Selection, spelling: Spelling) -> None:
        self.label = selection.label
        self.sp = spelling

    @abstractmethod
    def shares(self) -> Shares:
        """Every destination named, with its share (0 for one at weight 0)."""

    @abstractmethod
    def runtime_keys(self) -> list[str]:
        """Envoy runtime keys that, when set, override the file's shares."""

    @abstractmethod
    def set(self, stable: str, canary: str, weights: Weights) -> None:
        """Give stable and canary these percentages, touching nothing else."""

    @abstractmethod
    def finalize(self, stable: str, canary: str) -> None:
        """Send everything to the canary; the stable cluster leaves where the shape allows."""

    @abstractmethod
    def check(self, stable: str, canary: str) -> None:
        """RouteInvalid when this shape cannot be driven between stable and canary at all."""

    def refuse_others(self, stable: str, canary: str) -> None:
        """RouteInvalid when a destination other than stable and canary receives traffic."""
        others = sorted(set(nonzero(self.shares())) - {stable, canary})
        if others:
            raise RouteInvalid(
                f"{self.label}: the route also sends to {', '.join(others)}; "
                "refusing to change a split sluicegate does not own"
            )


class WeightedRoute(Target):
    """One route: ``cluster`` or ``weighted_clusters``."""

    def __init__(self, selection: Selection, spelling: Spelling, action: dict[str, Any]) -> None:
        super().__init__(selection, spelling)
        self.action = action

    def check(self, stable: str, canary: str) -> None:
        """Any such route can be driven. A destination taking traffic besides stable and canary
        is reported in the shares and refused by a change, not on a read: mid-rollout it is
        drift, for a person to look at."""

    def _entries(self) -> list[dict[str, Any]]:
        sp = self.sp
        if sp.has(self.action, "cluster"):
            return [{"name": sp.get(self.action, "cluster"), "weight": 100}]
        clusters = sp.get(sp.get(self.action, "weighted_clusters") or {}, "clusters")
        if not isinstance(clusters, list) or not all(isinstance(entry, dict) for entry in clusters):
            raise RouteInvalid(f"{self.label}: the route has neither cluster nor weighted_clusters")
        return clusters

    def _name(self, entry: dict[str, Any]) -> str:
        if entry.get("name"):
            return str(entry["name"])
        return f"(cluster_header {excerpt(self.sp.get(entry, 'cluster_header'), 40)})"

    def _weight(self, entry: dict[str, Any]) -> int:
        try:
            return int(entry.get("weight") or 0)  # proto JSON allows "700" as well as 700
        except (TypeError, ValueError):
            raise RouteInvalid(f"{self.label}: weight of {self._name(entry)} is not a number") from None

    def shares(self) -> Shares:
        entries = self._entries()
        total = sum(self._weight(entry) for entry in entries)
        shares: Shares = {}
        for entry in entries:
            share = Fraction(self._weight(entry), total) if total else Fraction(0)
            shares[self._name(entry)] = shares.get(self._name(entry), Fraction(0)) + share
        return shares

    def runtime_keys(self) -> list[str]:
        weighted = self.sp.get(self.action, "weighted_clusters") or {}
        prefix = self.sp.get(weighted, "runtime_key_prefix")
        return [f"{prefix}.{self._name(entry)}" for entry in self._entries()] if prefix else []

    def _scale(self) -> int:
        """What the weights sum to: ``total_weight``, else their sum when a multiple of 100."""
        weighted = self.sp.get(self.action, "weighted_clusters") or {}
        total = self.sp.get(weighted, "total_weight")
        if total:
            return int(total)
        entries = [] if self.sp.has(self.action, "cluster") else self._entries()
        summed = sum(self._weight(entry) for entry in entries)
        return summed if summed > 0 and summed % 100 == 0 else 100

    def _write(self, want: dict[str, int]) -> None:
        """Set the named clusters' percentages (others keep their weight), at the file's scale."""
        scale = self._scale()
        for name, share in want.items():
            if share * scale % 100:
                raise RouteInvalid(
                    f"{self.label}: {share}% of {name} is not a whole weight out of the route's "
                    f"total of {scale}; use a total_weight that is a multiple of 100"
                )
        entries = self._entries()
        names = [self._name(entry) for entry in entries]
        new: list[dict[str, Any]] = []
        # Keep the entries' order and any other keys they carry (headers to add, metadata).
        for entry in entries + [{"name": name} for name in want if name not in names]:
            entry = dict(entry)
            name = self._name(entry)
            if name in want:
                weight = want[name] * scale // 100
                entry["weight"] = str(weight) if isinstance(entry.get("weight"), str) else weight
            new.append(entry)
        self.sp.pop(self.action, "cluster")
        weighted = self.sp.get(self.action, "weighted_clusters")
        if not isinstance(weighted, dict):
            weighted = {}
            self.sp.put(self.action, "weighted_clusters", weighted)
        weighted["clusters"] = new

    def set(self, stable: str, canary: str, weights: Weights) -> None:
        self.refuse_others(stable, canary)
        self._write({stable: weights.stable, canary: weights.canary})

    def finalize(self, stable: str, canary: str) -> None:
        self.refuse_others(stable, canary)
        if set(self.shares()) <= {stable, canary}:
            self.sp.pop(self.action, "weighted_clusters")
            self.sp.put(self.action, "cluster", canary)
            return
        # Destinations at weight 0 stay (they send nothing); only the stable one leaves.
        self._write({canary: 100})
        clusters = self.sp.get(self.sp.get(self.action, "weighted_clusters"), "clusters")
        clusters[:] = [entry for entry in clusters if entry.get("name") != stable]


class ShiftPair(Target):
    """Envoy's documented traffic shift: ``first`` (with ``runtime_fraction``) and ``second``."""

    def __init__(
        self, selection: Selection, spelling: Spelling, first: dict[str, Any], second: dict[str, Any]
    ) -> None:
        super().__init__(selection, spelling)
        sp = spelling
        self.fraction = sp.get(sp.get(first, "match"), "runtime_fraction")
        self.clusters = [sp.get(sp.get(route, "route"), "cluster") for route in (first, second)]
        default = sp.get(self.fraction, "default_value") or {}
        denominator = _DENOMINATORS.get(sp.get(default, "denominator", "HUNDRED"))
        if denominator is None:
            raise RouteInvalid(f"{self.label}: runtime_fraction has an unknown denominator")
        self.denominator = denominator

    def _first_share(self) -> Fraction:
        default = self.sp.get(self.fraction, "default_value") or {}
        numerator = int(self.sp.get(default, "numerator") or 0)
        return min(Fraction(numerator, self.denominator), Fraction(1))

    def shares(self) -> Shares:
        first, second = self.clusters
        shares = {first: self._first_share()}
        shares[second] = shares.get(second, Fraction(0)) + 1 - self._first_share()
        return shares

    def runtime_keys(self) -> list[str]:
        key = self.sp.get(self.fraction, "runtime_key")
        return [str(key)] if key else []

    def check(self, stable: str, canary: str) -> None:
        """The shift moves traffic between its two clusters only: they must be stable and canary."""
        if sorted(self.clusters) != sorted([stable, canary]):
            first, second = self.clusters
            raise RouteInvalid(
                f"{self.label}: the runtime_fraction traffic shift sends to {first} and {second}, "
                f"not to {stable} and {canary}; sluicegate can only move its fraction between them"
            )

    def set(self, stable: str, canary: str, weights: Weights) -> None:
        self.check(stable, canary)
        share = weights.stable if self.clusters[0] == stable else weights.canary
        default = self.sp.get(self.fraction, "default_value")
        if not isinstance(default, dict):
            default = {}
            self.sp.put(self.fraction, "default_value", default)
        default["numerator"] = share * self.denominator // 100

    def finalize(self, stable: str, canary: str) -> None:
        # The stable route stays, matching nothing: removing a route is not a weight change.
        self.set(stable, canary, Weights(stable=0, canary=100))

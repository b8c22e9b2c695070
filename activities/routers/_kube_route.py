"""What the Kubernetes routers share: weighted lists (VirtualService ``route[]``, HTTPRoute
``backendRefs[]``) inside one custom object, read and written with optimistic concurrency.

:class:`KubernetesRoute` implements the whole :class:`~activities.routers.Router` protocol; a
router kind only says where its lists are, how an entry matches a destination, how its weights
read, and how a missing entry is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeVar

from kubernetes import client

from activities.errors import RouteInvalid, RouteNotFound
from activities.routers._kube import CustomObject, ObjectKind, api_client
from workflows.models import RouteInput, RouteState, Weights
from workflows.spec import Destination, RouterSpecBase

__all__ = ["KubernetesRoute", "WeightedList"]

SpecT = TypeVar("SpecT", bound=RouterSpecBase)


@dataclass
class WeightedList:
    """One weighted list inside the object, edited in place."""

    where: str
    """Where it is, for messages: ``rule 1``, ``http route 0``, ``tls route 2``."""
    entries: list[dict[str, Any]]
    holder: dict[str, Any]
    """The rule or route that holds the list (its filters and mirrors)."""


class KubernetesRoute(ABC, Generic[SpecT]):
    """Shifts weights between two entries of one weighted list in one namespaced custom object.

    Every write goes through :meth:`CustomObject.update` and touches only the lists
    :meth:`_lists` names: the stable and canary weights, a missing stable/canary entry, and on
    :meth:`finalize` the stable entry's removal. A list in which another destination takes
    traffic is refused, never rebalanced; one at weight 0 sends nothing and stays at 0.
    """

    object_kind: ClassVar[ObjectKind]

    def __init__(
        self,
        spec: SpecT,
        namespace: str,
        stable: Destination,
        canary: Destination,
        api: client.ApiClient | None = None,
        selected: int | None = None,
    ) -> None:
        self.spec = spec
        self.namespace = namespace
        self.stable = stable
        self.canary = canary
        self.selected = selected
        """The list step 0 chose by default (:attr:`RouteInput.selected`), kept from then on."""
        self._chosen: int | None = None
        self._api = api or api_client()
        self.object = CustomObject(self.object_kind, namespace, self.object_name, self._api)

    @classmethod
    def for_route(cls, spec: SpecT, route: RouteInput) -> Self:
        """The router for a rollout's route (the entry in :data:`activities.routers.ROUTERS`)."""
        return cls(spec, route.namespace, route.stable, route.canary, selected=route.selected)

    # -- what a kind says ------------------------------------------------------------------

    @property
    @abstractmethod
    def object_name(self) -> str:
        """The custom object's name, from the spec."""

    @property
    @abstractmethod
    def description(self) -> str:
        """``kind:namespace/name#list``, for messages and :class:`RouteState`."""

    @abstractmethod
    def _lists(self, obj: dict[str, Any]) -> list[WeightedList]:
        """The lists inside ``obj`` to edit in place (created empty when absent): the first is
        the one whose weights are read, the others follow its weights."""

    @abstractmethod
    def _matches(self, entry: dict[str, Any], dest: Destination) -> bool:
        """Whether ``entry`` sends to ``dest``."""

    @abstractmethod
    def _entry_weights(self, entries: list[dict[str, Any]]) -> list[int]:
        """Each entry's share in percent, as the data plane reads the list."""

    @abstractmethod
    def _entry_label(self, entry: dict[str, Any]) -> str:
        """A short name for an entry, for messages."""

    @abstractmethod
    def _new_entry(self, dest: Destination, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """An entry for ``dest`` to add to ``entries`` (weight set by the caller)."""

    def _names(self, entry: dict[str, Any], dest: Destination) -> bool:
        """Whether ``entry`` is meant as ``dest``, when choosing the default list (default:
        :meth:`_matches`; a kind may be looser, so that a ref it cannot edit is explained)."""
        return self._matches(entry, dest)

    def _check_destinations(self, dests: list[Destination]) -> None:
        """Refuse before any write a destination the data plane could not serve (default: none)."""

    def _warnings(self, chosen: WeightedList) -> list[str]:
        """What is worth telling about the chosen list without refusing it (default: nothing)."""
        return []

    # -- Router ----------------------------------------------------------------------------

    def get_routes(self) -> RouteState:
        """The current weights of stable and canary, in percent of the list's traffic."""
        return self._state(self.object.read())

    def set_routes(self, weights: Weights) -> RouteState:
        """Set the split, adding a missing stable/canary entry; nothing else changes."""
        if not (0 <= weights.stable <= 100 and 0 <= weights.canary <= 100) or (
            weights.stable + weights.canary != 100
        ):
            raise RouteInvalid(
                f"{self.description}: weights must be 0..100 and sum to 100, got "
                f"{weights.stable}/{weights.canary}"
            )
        self._check_destinations([self.stable, self.canary])

        def change(obj: dict[str, Any]) -> None:
            lists = self._lists(obj)
            for weighted in lists:
                self._refuse_others(weighted)
            for weighted in lists:
                entries = weighted.entries
                stable = self._find(entries, self.stable)
                canary = self._find(entries, self.canary)
                if stable is None:
                    stable = self._new_entry(self.stable, entries)
                    entries.insert(0, stable)
                if canary is None:
                    canary = self._new_entry(self.canary, entries)
                    entries.append(canary)
                stable["weight"] = weights.stable
                canary["weight"] = weights.canary

        return self._state(self.object.update(change))

    def finalize(self) -> RouteState:
        """The list sends 100% to the canary; the stable entry leaves it (entries at weight 0
        stay, as they do in :meth:`set_routes`)."""
        self._check_destinations([self.canary])

        def change(obj: dict[str, Any]) -> None:
            lists = self._lists(obj)
            for weighted in lists:
                self._refuse_others(weighted)
            for weighted in lists:
                entries = weighted.entries
                if self._find(entries, self.stable) is None and self._share(entries, self.canary) == 100:
                    continue  # done already (a retry): no write
                canary = self._find(entries, self.canary) or self._new_entry(self.canary, entries)
                canary["weight"] = 100
                kept = [e for e in entries if not self._matches(e, self.stable)]
                entries[:] = kept if any(e is canary for e in kept) else [canary, *kept]

        return self._state(self.object.update(change))

    # -- reading the lists -----------------------------------------------------------------

    def _state(self, obj: dict[str, Any]) -> RouteState:
        chosen = self._lists(obj)[0]
        stable = canary = None
        for entry, weight in zip(chosen.entries, self._entry_weights(chosen.entries), strict=True):
            if self._matches(entry, self.stable):
                stable = (stable or 0) + weight
            elif self._matches(entry, self.canary):
                canary = (canary or 0) + weight
        return RouteState(
            stable=stable,
            canary=canary,
            others=self._others(chosen.entries),
            version=str((obj.get("metadata") or {}).get("resourceVersion", "")),
            description=self.description,
            warnings=self._warnings(chosen),
            selected=self._chosen,
        )

    def _find(self, entries: list[dict[str, Any]], dest: Destination) -> dict[str, Any] | None:
        return next((e for e in entries if self._matches(e, dest)), None)

    def _share(self, entries: list[dict[str, Any]], dest: Destination) -> int:
        weights = self._entry_weights(entries)
        return sum(w for e, w in zip(entries, weights, strict=True) if self._matches(e, dest))

    def _others(self, entries: list[dict[str, Any]]) -> dict[str, int]:
        """The other destinations that take traffic: weight 0 sends nothing (the Gateway API's
        ``httproute-weight`` conformance test keeps a third backend at 0), so it is no owner."""
        weights = self._entry_weights(entries)
        return {
            self._entry_label(entry): weight
            for entry, weight in zip(entries, weights, strict=True)
            if weight > 0 and not self._matches(entry, self.stable) and not self._matches(entry, self.canary)
        }

    def _refuse_others(self, weighted: WeightedList) -> None:
        others = self._others(weighted.entries)
        if others:
            sends = ", ".join(f"{label} ({share}%)" for label, share in sorted(others.items()))
            raise RouteInvalid(
                f"{self.description}: {weighted.where} also sends to {sends}; refusing to change a "
                "split sluicegate does not own (other destinations may stay on it at weight 0)"
            )

    def _default_index(self, lists: Sequence[list[dict[str, Any]]], noun: str, key: str) -> int:
        """Which of ``lists`` the rollout shifts when the spec does not say: the one naming both
        stable and canary, else the one naming the stable, else the one naming the canary, else
        the only one. Several at the first level that has any is refused: sluicegate shifts one
        list, and guessing could shift the wrong traffic.

        Once step 0 chose, later calls keep its choice (:attr:`selected`) while that list still
        names stable or canary: after removeOld a rule sending only to the old stable (a path
        the rollout did not shift) would otherwise look like the route."""
        self._chosen = self._choose(lists, noun, key)
        return self._chosen

    def _choose(self, lists: Sequence[list[dict[str, Any]]], noun: str, key: str) -> int:
        def naming(*dests: Destination) -> list[int]:
            return [
                index
                for index, entries in enumerate(lists)
                if all(any(self._names(e, dest) for e in entries) for dest in dests)
            ]

        if self.selected is not None and self.selected in naming(self.stable) + naming(self.canary):
            return self.selected
        stable, canary = self.stable.label(), self.canary.label()
        levels = [
            (f"{stable} and {canary}", naming(self.stable, self.canary)),
            (stable, naming(self.stable)),
            (canary, naming(self.canary)),
        ]
        for what, found in levels:
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise RouteInvalid(
                    f"{self.description}: {noun}s {', '.join(map(str, found))} all route to {what}; "
                    f"sluicegate shifts one {noun}: set router.{key} to the one to shift"
                )
        if len(lists) == 1:
            return 0  # a fresh route: step 0 adds both destinations to its only list
        raise RouteNotFound(
            f"{self.description}: none of the {len(lists)} {noun}s routes to {stable} or {canary}; "
            f"set router.{key} to the {noun} to shift"
        )

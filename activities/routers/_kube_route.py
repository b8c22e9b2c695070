"""What the Kubernetes routers share: one weighted list (VirtualService ``route[]``, HTTPRoute
``backendRefs[]``) inside one custom object, read and written with optimistic concurrency.

:class:`KubernetesRoute` implements the whole :class:`~activities.routers.Router` protocol; a
router kind only says where its list is, how an entry matches a destination, how its weights
read, and how a missing entry is written.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Generic, Self, TypeVar

from kubernetes import client

from activities.errors import RouteInvalid
from activities.routers._kube import CustomObject, ObjectKind, api_client
from workflows.models import RouteInput, RouteState, Weights
from workflows.spec import Destination, RouterSpecBase

__all__ = ["KubernetesRoute"]

SpecT = TypeVar("SpecT", bound=RouterSpecBase)


class KubernetesRoute(ABC, Generic[SpecT]):
    """Shifts weights between two entries of one weighted list in one namespaced custom object.

    Every write goes through :meth:`CustomObject.update` and touches only that list: the stable
    and canary weights, a missing stable/canary entry, and on :meth:`finalize` the stable entry's
    removal. A list that also sends traffic elsewhere is refused, never rebalanced.
    """

    object_kind: ClassVar[ObjectKind]
    entries_name: ClassVar[str]
    """What the list is called in messages (``route``, ``rule``)."""

    def __init__(
        self,
        spec: SpecT,
        namespace: str,
        stable: Destination,
        canary: Destination,
        api: client.ApiClient | None = None,
    ) -> None:
        self.spec = spec
        self.namespace = namespace
        self.stable = stable
        self.canary = canary
        self._api = api or api_client()
        self.object = CustomObject(self.object_kind, namespace, self.object_name, self._api)

    @classmethod
    def for_route(cls, spec: SpecT, route: RouteInput) -> Self:
        """The router for a rollout's route (the entry in :data:`activities.routers.ROUTERS`)."""
        return cls(spec, route.namespace, route.stable, route.canary)

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
    def _entries(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """The weighted list inside ``obj`` (created empty when absent), to edit in place."""

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

    def _check_destinations(self, dests: list[Destination]) -> None:
        """Refuse before any write a destination the data plane could not serve (default: none)."""

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
            entries = self._entries(obj)
            self._refuse_others(entries)
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
        """The list sends 100% to the canary alone; the stable entry leaves it."""
        self._check_destinations([self.canary])

        def change(obj: dict[str, Any]) -> None:
            entries = self._entries(obj)
            self._refuse_others(entries)
            canary = self._find(entries, self.canary) or self._new_entry(self.canary, entries)
            canary["weight"] = 100
            entries[:] = [canary]

        return self._state(self.object.update(change))

    # -- reading the list ------------------------------------------------------------------

    def _state(self, obj: dict[str, Any]) -> RouteState:
        entries = self._entries(obj)
        stable = canary = None
        for entry, weight in zip(entries, self._entry_weights(entries), strict=True):
            if self._matches(entry, self.stable):
                stable = (stable or 0) + weight
            elif self._matches(entry, self.canary):
                canary = (canary or 0) + weight
        return RouteState(
            stable=stable,
            canary=canary,
            others=self._others(entries),
            version=str((obj.get("metadata") or {}).get("resourceVersion", "")),
            description=self.description,
        )

    def _find(self, entries: list[dict[str, Any]], dest: Destination) -> dict[str, Any] | None:
        return next((e for e in entries if self._matches(e, dest)), None)

    def _others(self, entries: list[dict[str, Any]]) -> dict[str, int]:
        weights = self._entry_weights(entries)
        return {
            self._entry_label(entry): weight
            for entry, weight in zip(entries, weights, strict=True)
            if not self._matches(entry, self.stable) and not self._matches(entry, self.canary)
        }

    def _refuse_others(self, entries: list[dict[str, Any]]) -> None:
        others = self._others(entries)
        if others:
            raise RouteInvalid(
                f"{self.description}: the {self.entries_name} also sends to {', '.join(sorted(others))}; "
                "refusing to change a split sluicegate does not own"
            )

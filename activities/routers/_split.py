"""What the Kubernetes routers share: finding stable and canary among a route's weighted
entries, and refusing to edit a split that also sends traffic somewhere else."""

from __future__ import annotations

from typing import Any

from activities.errors import RouteInvalid
from workflows.spec import Destination

__all__ = ["WeightedEntries"]


class WeightedEntries:
    """Mixin over a list of weighted entries (VirtualService destinations, HTTPRoute backendRefs).

    Subclasses say how an entry matches a destination, what weights the entries carry, how one is
    named in messages, and what the list is called (``route``, ``rule``).
    """

    stable: Destination
    canary: Destination
    entries_name: str

    @property
    def description(self) -> str:
        raise NotImplementedError

    def _matches(self, entry: dict[str, Any], dest: Destination) -> bool:
        raise NotImplementedError

    def _entry_weights(self, entries: list[dict[str, Any]]) -> list[int]:
        raise NotImplementedError

    def _entry_label(self, entry: dict[str, Any]) -> str:
        raise NotImplementedError

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

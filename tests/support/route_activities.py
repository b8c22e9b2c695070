"""The route activities as the worker runs them, on routes taken from upstream projects.

:class:`RouteCalls` runs ``read_route``, ``set_weights`` and ``remove_old_route`` in Temporal's
``ActivityEnvironment`` (the real activities, their error mapping included) against whatever
cluster ``KUBECONFIG`` names: in tests, the Kubernetes emulator of the ``kube`` fixture.
:func:`upstream` loads the configurations kept under ``tests/upstream`` (see its README).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.routes import read_route, remove_old_route, set_weights
from workflows.models import RemoveOldInput, RouteInput, RouteState, SetWeightsInput, Weights
from workflows.spec import Destination, RouterSpec

__all__ = ["UPSTREAM", "RouteCalls", "upstream"]

UPSTREAM = Path(__file__).resolve().parents[1] / "upstream"


def upstream(filename: str, kind: str | None = None) -> dict[str, Any]:
    """The first document of ``tests/upstream/<filename>`` (of ``kind``, when given)."""
    documents = [d for d in yaml.safe_load_all((UPSTREAM / filename).read_text()) if d]
    return next(d for d in documents if kind is None or d.get("kind") == kind)


@dataclasses.dataclass
class RouteCalls:
    """One rollout's route, and the activities the workflow would call on it. The first
    :meth:`read` is step 0's: like the workflow, later calls pass on the list it chose."""

    router: RouterSpec
    stable: Destination
    canary: Destination
    namespace: str = "default"
    original: RouteState | None = None

    def _input(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "namespace": self.namespace,
            "stable": self.stable,
            "canary": self.canary,
            "selected": self.original.selected if self.original else None,
        }

    async def read(self) -> RouteState:
        """``read_route``, as step 0 (the first time) and the drift checks run it."""
        state: RouteState = await ActivityEnvironment().run(read_route, RouteInput(**self._input()))
        self.original = self.original or state
        return state

    async def set(self, stable: int, canary: int) -> RouteState:
        """``set_weights`` to ``stable``/``canary``."""
        request = SetWeightsInput(**self._input(), weights=Weights(stable=stable, canary=canary))
        state: RouteState = await ActivityEnvironment().run(set_weights, request)
        return state

    async def remove_old(self) -> RouteState:
        """``remove_old_route``: 100% to the canary alone."""
        state: RouteState = await ActivityEnvironment().run(remove_old_route, RemoveOldInput(**self._input()))
        return state

    async def refused(self, call: str, *args: int) -> ApplicationError:
        """The typed error ``call`` (``read``, ``set``, ``remove_old``) fails with."""
        with pytest.raises(ApplicationError) as raised:
            await getattr(self, call)(*args)
        return raised.value

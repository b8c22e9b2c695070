"""``sluice_route_changes_total``: every route write an activity attempts, counted by its result.

Recorded through the activity's metric meter (:func:`temporalio.activity.metric_meter`), so the
worker serves it beside the Temporal SDK's own metrics; the SDK adds ``activity_type``
(``set_weights`` or ``remove_old_route``), ``namespace`` and ``task_queue``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.models import RouteInput, RouteState
from workflows.rollout_metrics import ROUTE_CHANGES

__all__ = ["counted_route_change"]


async def counted_route_change(route: RouteInput, change: Awaitable[RouteState]) -> RouteState:
    """Await ``change`` (a write to ``route``), counting it as succeeded, drifted (the route was
    changed behind the rollout's back), failed or cancelled; its outcome passes through."""
    result = "failed"
    try:
        state = await change
        result = "succeeded"
        return state
    except ApplicationError as error:
        result = "drifted" if error.type == "RouteDrifted" else "failed"
        raise
    except asyncio.CancelledError:
        result = "cancelled"
        raise
    finally:
        counter = activity.metric_meter().create_counter(ROUTE_CHANGES.name, ROUTE_CHANGES.help)
        counter.add(1, {"service": route.service, "router": route.router.kind, "result": result})

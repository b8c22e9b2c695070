"""Route activities: read and set a route's weights through the router its spec names."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TypeVar

import structlog
from temporalio import activity

from activities.errors import RouteDrifted, SluiceError, as_application_error
from activities.route_metrics import counted_route_change
from activities.routers import Router, build_router
from workflows.models import RemoveOldInput, RouteInput, RouteState, SetWeightsInput, Weights

__all__ = ["read_route", "remove_old_route", "set_weights"]

log = structlog.get_logger(__name__)
T = TypeVar("T")


# Heartbeat this often while a router call runs, so a cancellation (abort, workflow cancel)
# reaches the activity within the workflow's heartbeat timeout instead of after all retries.
HEARTBEAT_SECONDS = 1.0


async def _heartbeating(route: RouteInput, call: Callable[[Router], T]) -> T:
    """Build the route's router and run ``call`` on it in one thread (building may resolve an
    address the worker's policy checks), heartbeating. On cancellation, ask the router to stop
    waiting (an Envoy confirmation) and let the call finish: a write that started lands or fails
    before the workflow hears the change was cancelled, so nothing lands after its rollback."""
    cancelled = threading.Event()
    built: list[Router] = []

    def build_and_call() -> T:
        router = build_router(route)
        built.append(router)  # before the check below: a cancellation sees one or the other
        if cancelled.is_set():
            raise _CancelledBeforeChange
        return call(router)

    work = asyncio.ensure_future(asyncio.to_thread(build_and_call))
    try:
        while True:
            done, _ = await asyncio.wait({work}, timeout=HEARTBEAT_SECONDS)
            if done:
                return work.result()
            activity.heartbeat()
    except asyncio.CancelledError:
        cancelled.set()
        for router in built:
            stop = getattr(router, "stop_waiting", None)
            if stop is not None:
                stop.set()
        await asyncio.wait({work})
        if not work.cancelled():
            work.exception()  # the cancellation is the outcome; the call's own error is moot
        raise


class _CancelledBeforeChange(Exception):
    """The activity was cancelled while its router was being built: nothing was changed."""


async def _with_router(route: RouteInput, call: Callable[[Router], T]) -> T:
    """Run a blocking call on the route's router, heartbeating, mapping our errors to Temporal's."""
    try:
        return await _heartbeating(route, call)
    except SluiceError as error:
        log.warning(
            "router call failed",
            rollout_id=route.rollout_id,
            error_type=type(error).__name__,
            error=str(error),
            attempt=activity.info().attempt,
        )
        raise as_application_error(error) from error


def _refuse_drift(router: Router, expected: Weights | None, at_target: Callable[[RouteState], bool]) -> None:
    """Raise :class:`RouteDrifted` when the route is neither where the rollout left it nor
    already where this change takes it. The second is a retry of a write that landed (the worker
    died after writing, or Envoy's admin did not confirm in time): success, not drift."""
    if expected is None:
        return
    current = router.get_routes()
    observed = current.weights()
    if not current.others and (observed == expected or at_target(current)):
        return
    others = f" and {current.others}" if current.others else ""
    raise RouteDrifted(
        f"{current.description}: the route holds {observed.stable}/{observed.canary}{others}, "
        f"not the {expected.stable}/{expected.canary} this rollout set; someone changed it",
        current.model_dump(mode="json"),
    )


@activity.defn(name="read_route")
async def read_route(route: RouteInput) -> RouteState:
    """Read the route's current stable/canary weights."""
    state = await _with_router(route, lambda router: router.get_routes())
    log.info(
        "route read",
        rollout_id=route.rollout_id,
        stable=state.stable,
        canary=state.canary,
        route=state.description,
    )
    return state


@activity.defn(name="set_weights")
async def set_weights(request: SetWeightsInput) -> RouteState:
    """Set the route to the requested weights (idempotent)."""

    def change(router: Router) -> RouteState:
        _refuse_drift(router, request.expected, lambda route: route.weights() == request.weights)
        return router.set_routes(request.weights)

    state = await counted_route_change(request, _with_router(request, change))
    log.info(
        "weights set",
        rollout_id=request.rollout_id,
        stable=request.weights.stable,
        canary=request.weights.canary,
        route=state.description,
        version=state.version,
    )
    return state


@activity.defn(name="remove_old_route")
async def remove_old_route(request: RemoveOldInput) -> RouteState:
    """Make the route send 100% to the canary alone (the stable destination leaves it)."""

    def change(router: Router) -> RouteState:
        _refuse_drift(router, request.expected, lambda route: (route.stable, route.canary) == (None, 100))
        return router.finalize()

    state = await counted_route_change(request, _with_router(request, change))
    log.info("old version removed from route", rollout_id=request.rollout_id, route=state.description)
    return state

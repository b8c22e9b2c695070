"""``RouteClaim``: a route owned by at most one running rollout, with Temporal as the lock.

A rollout claims its route at step 0 by starting a ``RouteClaim`` child workflow whose id is
derived from the route (:func:`route_claim_id`); Temporal refuses a second running workflow with
that id, so a second rollout of the same route, whatever its own workflow id (a scheduled run, a
manual start), learns the route is busy before it touches traffic. The claim ends when its owner
releases it, or when anyone asks it to and its owner is found no longer running (a terminated
rollout never releases: the next rollout that wants the route clears it). No store of our own.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows._base import _Model

__all__ = ["ClaimInput", "ClaimOwner", "ReleaseInput", "RouteClaim", "route_claim_id"]


def route_claim_id(route_identity: str) -> str:
    """The claim's workflow id: ``route-claim-<kind>-<hash of the route>`` (ids stay short)."""
    kind = route_identity.split(":", 1)[0]
    digest = hashlib.sha256(route_identity.encode()).hexdigest()[:24]
    return f"route-claim-{kind}-{digest}"


class ClaimInput(_Model):
    """Who claims which route."""

    route: str
    """The route's identity (``envoy:/path/rds.yaml#reviews//``)."""
    owner: str
    """The owning rollout's workflow id."""


class ReleaseInput(_Model):
    """``release``: the owner is done with the route, or someone found the owner gone."""

    by: str
    reason: str = ""


class ClaimOwner(_Model):
    """What ``route_claim_owner`` found: the claim's owner and whether it still runs."""

    claim_id: str
    owner: str = ""
    route: str = ""
    running: bool = False
    """Whether the owner rollout (its latest run) is running."""
    claimed: bool = True
    """False when no claim runs under that id any more."""


@workflow.defn(name="RouteClaim")
class RouteClaim:
    """Holds the route for its owner until released (see the module docstring)."""

    @workflow.init
    def __init__(self, claim: ClaimInput) -> None:
        self.claim = claim
        self.requests: list[ReleaseInput] = []

    @workflow.run
    async def run(self, claim: ClaimInput) -> str:
        """Wait for a release; honour one from anyone but the owner only if the owner is gone."""
        while True:
            await workflow.wait_condition(lambda: bool(self.requests))
            request = self.requests.pop(0)
            if request.by == claim.owner:
                break
            running = await workflow.execute_activity(
                "rollout_is_running",
                claim.owner,
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
            )
            if not running:
                break
            workflow.logger.info("release refused: owner still running", extra={"by": request.by})
        await workflow.wait_condition(workflow.all_handlers_finished)
        return f"released by {request.by}" + (f": {request.reason}" if request.reason else "")

    @workflow.signal(name="release")
    def release(self, request: ReleaseInput) -> None:
        """End the claim (the owner), or ask it to end because its owner is gone (anyone)."""
        self.requests.append(request)

    @workflow.query(name="owner")
    def owner(self) -> ClaimInput:
        """The route and the rollout that owns it."""
        return self.claim

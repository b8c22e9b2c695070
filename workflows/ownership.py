"""Route ownership, the rollout's side: claim the route before step 0 touches it, release it at
the end. See :mod:`workflows.route_claim` for how the claim itself works."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from workflows import timeline
    from workflows.carried import RolloutState
    from workflows.errors import RolloutFailure
    from workflows.events import EventSink
    from workflows.patches import patched
    from workflows.route_claim import ClaimInput, ClaimOwner, ReleaseInput, route_claim_id
    from workflows.spec import RolloutSpec
    from workflows.waits import Waits

__all__ = ["ROUTE_BUSY_RETRY", "RouteOwnership"]

# Rollouts from before route ownership neither claim nor release (replay of runs in flight).
ROUTE_OWNERSHIP_PATCH = "rollouts-own-their-route"
ROUTE_BUSY_RETRY = timedelta(seconds=15)
"""How often a rollout with ``onRouteBusy: wait`` tries the route again."""
# Runs from this patch on give a stale claim a moment to end after asking it to, instead of
# asking again at once (older runs looped start-child / describe / signal until it had ended).
STALE_CLAIM_PATCH = "stale-claim-settles"
STALE_CLAIM_SETTLE = timedelta(seconds=1)


class RouteOwnership:
    """Claims and releases this rollout's route; ``state.route_claim`` says it holds it."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, events: EventSink, waits: Waits) -> None:
        self.spec, self.state, self.events, self.waits = spec, state, events, waits
        # Asked before anything else runs: a patch first asked after the run's local activity
        # is not seen on replay (the marker lands in the next workflow task).
        self.enabled = patched(ROUTE_OWNERSHIP_PATCH)

    async def claim(self) -> None:
        """Own the route, or fail with ``RouteBusy`` / wait (``onRouteBusy``) while another
        running rollout owns it. A claim whose owner is gone is cleared on the way."""
        if self.state.route_claim is not None or not self.enabled:
            return
        route = self.spec.route_identity()
        claim_id = route_claim_id(route)
        me = workflow.info().workflow_id
        while True:
            try:
                await workflow.start_child_workflow(
                    "RouteClaim",
                    ClaimInput(route=route, owner=me),
                    id=claim_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    static_summary=timeline.claim_route(route),
                )
                break
            except WorkflowAlreadyStartedError:
                pass
            owner = await self._owner(claim_id)
            if owner.owner == me:
                break  # an earlier run of this rollout's id claimed it: ours
            if owner.claimed and not owner.running:
                await self._release(claim_id, f"owner {owner.owner} is no longer running")
                if patched(STALE_CLAIM_PATCH):
                    # The claim checks that its owner is gone before it ends (an activity).
                    await workflow.sleep(STALE_CLAIM_SETTLE)
                continue
            if owner.claimed and self.spec.on_route_busy == "fail":
                raise RolloutFailure(
                    "RouteBusy",
                    f"route {route} is owned by running rollout {owner.owner} (claim {claim_id}); "
                    "try again when it ends, or set onRouteBusy: wait",
                )
            if owner.claimed:
                await self._wait_for(owner)
        self.state.route_claim = claim_id
        self.events.record("routeClaimed", 0, detail={"route": route, "claim": claim_id})

    async def release(self) -> None:
        """Give the route back (at the end of the rollout, whichever way it ended)."""
        claim_id = self.state.route_claim
        if claim_id is None:
            return
        self.state.route_claim = None
        try:
            await self._release(claim_id, "rollout ended")
        except Exception as error:
            workflow.logger.warning(
                "route claim already gone", extra={"claim": claim_id, "error": str(error)}
            )

    async def _owner(self, claim_id: str) -> ClaimOwner:
        owner: ClaimOwner = await workflow.execute_activity(
            "route_claim_owner",
            claim_id,
            result_type=ClaimOwner,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=5),
            summary=timeline.route_owner(claim_id),
        )
        return owner

    async def _release(self, claim_id: str, reason: str) -> None:
        handle = workflow.get_external_workflow_handle(claim_id)
        await handle.signal("release", ReleaseInput(by=workflow.info().workflow_id, reason=reason))

    async def _wait_for(self, owner: ClaimOwner) -> None:
        self.waits.begin(
            "route",
            0,
            reason=f"the route is owned by running rollout {owner.owner}",
            hint=f"wait, or abort this rollout; the owner's claim is {owner.claim_id}",
        )
        retry = workflow.now() + ROUTE_BUSY_RETRY
        await self.waits.until(lambda: False, retry, timeline.route_busy_retry(ROUTE_BUSY_RETRY))
        self.waits.end()

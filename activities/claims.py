"""Activities the route claim needs: is a rollout still running, and who owns a claim.

They read Temporal itself (the worker's own client), the one place sluicegate keeps ownership.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from workflows.route_claim import ClaimOwner

__all__ = ["ClaimActivities"]


class ClaimActivities:
    """Bound to the worker's Temporal client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def all(self) -> list[Callable[..., Any]]:
        return [self.rollout_is_running, self.route_claim_owner]

    async def _status(self, workflow_id: str) -> tuple[WorkflowExecutionStatus | None, str | None]:
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None, None
            raise
        return description.status, description.parent_id

    @activity.defn(name="rollout_is_running")
    async def rollout_is_running(self, workflow_id: str) -> bool:
        """Whether the latest run of ``workflow_id`` is running."""
        status, _ = await self._status(workflow_id)
        return status == WorkflowExecutionStatus.RUNNING

    @activity.defn(name="route_claim_owner")
    async def route_claim_owner(self, claim_id: str) -> ClaimOwner:
        """The rollout that started the running claim ``claim_id``, and whether it still runs."""
        status, owner = await self._status(claim_id)
        if status != WorkflowExecutionStatus.RUNNING or owner is None:
            return ClaimOwner(claim_id=claim_id, claimed=False)
        return ClaimOwner(claim_id=claim_id, owner=owner, running=await self.rollout_is_running(owner))

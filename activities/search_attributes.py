"""``search_attributes_registered``: may the workflow upsert sluicegate's search attributes here?

The Rollout names the ones it will set (``SluicePhase``/``SluiceService`` in runs that began
before the listing attributes, all five of :mod:`workflows.search_attributes` since). A workflow
that upserts a search attribute the namespace does not know gets stuck, so the Rollout asks once,
at start, through this local activity; the answer is recorded in history, so a replay takes the
same branch. ``python -m worker`` registers them at start-up; servers that cannot (the
time-skipping test server, a namespace without the permission) answer no.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.service import RPCError

__all__ = ["search_attributes_registered"]


@activity.defn(name="search_attributes_registered")
async def search_attributes_registered(names: list[str]) -> bool:
    """True when every name is a search attribute of this worker's namespace."""
    client = activity.client()
    try:
        listing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError:
        return False
    known = set(listing.custom_attributes) | set(listing.system_attributes)
    return all(name in known for name in names)

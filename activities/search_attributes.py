"""``search_attributes_registered``: may the workflow upsert sluicegate's search attributes here?

The Rollout names the ones it will set (``SluicePhase``/``SluiceService`` in runs that began
before the listing attributes, all five of :mod:`workflows.search_attributes` since). A workflow
that upserts a search attribute the namespace does not know gets stuck, so the Rollout asks once,
at start, through this local activity; the answer is recorded in history, so a replay takes the
same branch. ``python -m worker`` registers them at start-up; servers that cannot (the
time-skipping test server, a namespace without the permission) answer no. A server that is busy
or unreachable has not answered: the activity fails and the local activity retries (answering no
then would leave a rollout out of every list for its whole run, as 5 of 10,000 rollouts opened at
once on the dev server were).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.service import RPCError, RPCStatusCode

__all__ = ["search_attributes_registered"]

_WILL_NOT_TELL = {RPCStatusCode.UNIMPLEMENTED, RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.NOT_FOUND}
"""Answers that mean this worker cannot learn the namespace's search attributes: publish none."""


@activity.defn(name="search_attributes_registered")
async def search_attributes_registered(names: list[str]) -> bool:
    """True when every name is a search attribute of this worker's namespace."""
    client = activity.client()
    try:
        listing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as error:
        if error.status in _WILL_NOT_TELL:
            return False
        raise  # busy or unreachable: no answer yet (the local activity retries)
    known = set(listing.custom_attributes) | set(listing.system_attributes)
    return all(name in known for name in names)

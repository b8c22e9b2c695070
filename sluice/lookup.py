"""Naming a rollout: by its workflow id, or by its service (``sluice status reviews``).

A service's rollouts run as ``rollout-<namespace>-<service>``, and a scheduled run carries the
time it was started at on top (``rollout-default-reviews-2026-11-28T03:00:00Z``): a service name
finds the one running ``Rollout`` whose ``SluiceService`` search attribute is that service (or,
on a namespace without sluicegate's search attributes, whose id has that form).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from workflows.events import SERVICE_SEARCH_ATTRIBUTE

__all__ = ["AmbiguousRollout", "RolloutMatch", "UnknownRollout", "resolve_rollout", "running_rollouts_of"]

RUNNING_ROLLOUTS = "WorkflowType = 'Rollout' AND ExecutionStatus = 'Running'"
_SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class UnknownRollout(Exception):
    """Neither a workflow of that id nor a running rollout of a service of that name."""


class AmbiguousRollout(Exception):
    """Several rollouts of that service run: the caller must name one by its id."""


@dataclass(frozen=True)
class RolloutMatch:
    """A running rollout found by its service."""

    workflow_id: str
    start_time: datetime | None


async def resolve_rollout(client: Client, name: str) -> str:
    """The workflow id ``name`` stands for: itself when such a workflow exists (running or not),
    else the id of the one running rollout of the service ``name``.

    Raises :class:`UnknownRollout` or :class:`AmbiguousRollout` (naming the candidates)."""
    try:
        await client.get_workflow_handle(name).describe()
        return name
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
    matches = await running_rollouts_of(client, name) if _SERVICE_NAME.match(name) else []
    if not matches:
        raise UnknownRollout(
            f"no rollout {name!r} in namespace {client.namespace}, and no running rollout of a service "
            f"{name!r} (`temporal workflow list --query \"WorkflowType='Rollout'\"` lists them)"
        )
    if len(matches) > 1:
        listed = ", ".join(
            match.workflow_id
            + (f" (started {match.start_time:%Y-%m-%d %H:%M:%S})" if match.start_time else "")
            for match in matches
        )
        raise AmbiguousRollout(f"{len(matches)} rollouts of {name} are running: {listed}; name one by its id")
    return matches[0].workflow_id


async def _list(client: Client, query: str) -> AsyncIterator[WorkflowExecution]:
    """``query``'s workflows; without its last condition where the server does not know that
    operator (``STARTS_WITH`` is recent), the caller filters anyway."""
    try:
        async for execution in client.list_workflows(query):
            yield execution
    except RPCError as error:
        if error.status != RPCStatusCode.INVALID_ARGUMENT:
            raise
        async for execution in client.list_workflows(query.rsplit(" AND ", 1)[0]):
            yield execution


async def running_rollouts_of(client: Client, service: str) -> list[RolloutMatch]:
    """The running rollouts of ``service``, newest first: those whose ``SluiceService`` says so,
    and those whose id has the default form (a rollout sets its search attributes only once its
    worker ran it, and a namespace may not have them)."""
    found: dict[str, RolloutMatch] = {}
    query = f"{RUNNING_ROLLOUTS} AND {SERVICE_SEARCH_ATTRIBUTE.name} = '{service}'"
    try:
        async for execution in client.list_workflows(query):
            found[execution.id] = RolloutMatch(execution.id, execution.start_time)
    except RPCError as error:
        if error.status != RPCStatusCode.INVALID_ARGUMENT:  # an unknown search attribute
            raise
    pattern = re.compile(rf"^rollout-.+-{re.escape(service)}(-\d{{4}}-\d\d-\d\dT.*)?$")
    async for execution in _list(client, f"{RUNNING_ROLLOUTS} AND WorkflowId STARTS_WITH 'rollout-'"):
        named = execution.typed_search_attributes.get(SERVICE_SEARCH_ATTRIBUTE)
        if pattern.match(execution.id) and named in (None, service):
            found[execution.id] = RolloutMatch(execution.id, execution.start_time)
    return sorted(
        found.values(),
        key=lambda match: match.start_time.timestamp() if match.start_time else 0.0,
        reverse=True,
    )

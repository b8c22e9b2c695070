"""sluicegate's search attributes: what ``sluice list`` and ``temporal workflow list --query`` read.

Temporal's visibility store indexes them, so a list of rollouts needs no query to each workflow:

============================  =======  ===========================================================
``SluicePhase``               Keyword  the phase (``WaitingForApproval``, ``Succeeded``, ...)
``SluiceService``             Keyword  the spec's ``service``
``SluiceStep``                Int      the plan step (0: initialisation; the spec's steps from 1)
``SluiceCanaryWeight``        Int      the canary's share of traffic (unset before step 0 set it)
``SluiceWaitingFor``          Keyword  ``approval``, ``resume``, ``bake``, ``route``, ``ready`` or
                                       ``window``; unset when the rollout waits for nothing
============================  =======  ===========================================================

Runs that took :data:`LISTING_ATTRIBUTES_PATCH` keep all five equal to the status, upserting only
what changed; older runs keep publishing ``SluicePhase`` and ``SluiceService`` as they did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from workflows.state import RolloutStatus

__all__ = [
    "ALL_SEARCH_ATTRIBUTES",
    "CANARY_WEIGHT_SEARCH_ATTRIBUTE",
    "LISTING_ATTRIBUTES_PATCH",
    "ONE_UPSERT_PER_TASK_PATCH",
    "PHASE_SEARCH_ATTRIBUTE",
    "SERVICE_SEARCH_ATTRIBUTE",
    "STEP_SEARCH_ATTRIBUTE",
    "WAITING_FOR_SEARCH_ATTRIBUTE",
    "Listed",
    "attribute_updates",
    "listed_values",
    "namespace_knows",
    "type_name",
]

PHASE_SEARCH_ATTRIBUTE = SearchAttributeKey.for_keyword("SluicePhase")
SERVICE_SEARCH_ATTRIBUTE = SearchAttributeKey.for_keyword("SluiceService")
STEP_SEARCH_ATTRIBUTE = SearchAttributeKey.for_int("SluiceStep")
CANARY_WEIGHT_SEARCH_ATTRIBUTE = SearchAttributeKey.for_int("SluiceCanaryWeight")
WAITING_FOR_SEARCH_ATTRIBUTE = SearchAttributeKey.for_keyword("SluiceWaitingFor")

ALL_SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[str] | SearchAttributeKey[int], ...] = (
    PHASE_SEARCH_ATTRIBUTE,
    SERVICE_SEARCH_ATTRIBUTE,
    STEP_SEARCH_ATTRIBUTE,
    CANARY_WEIGHT_SEARCH_ATTRIBUTE,
    WAITING_FOR_SEARCH_ATTRIBUTE,
)
"""Every search attribute a rollout sets: ``sluice dev`` and the worker register them all."""

# Runs started before this publish only SluicePhase/SluiceService (and an invalid spec nothing):
# the step, weight and wait attributes, and the invalid spec's upserts, are new commands.
LISTING_ATTRIBUTES_PATCH = "search-attributes-for-listing"

# Runs started before this upsert after every change; runs that took it upsert what changed when
# the activation's code can go no further, usually once per activation (fewer events and
# visibility writes).
ONE_UPSERT_PER_TASK_PATCH = "search-attributes-once-per-task"

Listed = dict[str, str | int | None]
"""Search attribute name to the value it should have (None: unset)."""

_TYPE_NAMES = {SearchAttributeIndexedValueType.KEYWORD: "Keyword", SearchAttributeIndexedValueType.INT: "Int"}


def type_name(key: SearchAttributeKey[str] | SearchAttributeKey[int]) -> str:
    """The type as ``temporal operator search-attribute create --type`` spells it (``Int``)."""
    return _TYPE_NAMES[key.indexed_value_type]


def listed_values(status: RolloutStatus) -> Listed:
    """What the five search attributes should say about a rollout in this ``status``.

    A service that is not printable text (an invalid spec's, as written) is left unset rather
    than put into the visibility store."""
    service = status.service if status.service and status.service.isprintable() else None
    weights, waiting = status.weights, status.waiting_for
    return {
        PHASE_SEARCH_ATTRIBUTE.name: status.phase,
        SERVICE_SEARCH_ATTRIBUTE.name: service,
        STEP_SEARCH_ATTRIBUTE.name: status.current_step,
        CANARY_WEIGHT_SEARCH_ATTRIBUTE.name: weights.canary if weights is not None else None,
        WAITING_FOR_SEARCH_ATTRIBUTE.name: waiting.kind if waiting is not None else None,
    }


def attribute_updates(wanted: Listed, current: TypedSearchAttributes) -> list[SearchAttributeUpdate[Any]]:
    """The updates that make ``current`` say ``wanted``: none for values already there, so a
    workflow task that changed nothing listed issues no upsert command."""
    updates: list[SearchAttributeUpdate[Any]] = []
    for key in ALL_SEARCH_ATTRIBUTES:
        value, present = wanted[key.name], current.get(key)
        if value is None:
            if present is not None:
                updates.append(key.value_unset())
        elif value != present:
            updates.append(key.value_set(value))  # type: ignore[arg-type]
    return updates


CHECK_RETRY = RetryPolicy(maximum_attempts=5)
"""A busy server is asked again (1 + 2 + 4 + 8 s apart) before the run gives up listing."""


async def namespace_knows(keys: Sequence[SearchAttributeKey[str] | SearchAttributeKey[int]]) -> bool:
    """Ask the worker (the local activity ``search_attributes_registered``, recorded in history so
    a replay takes the same branch) whether the namespace knows every one of ``keys``."""
    try:
        known: bool = await workflow.execute_local_activity(
            "search_attributes_registered",
            [key.name for key in keys],
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=CHECK_RETRY,
            summary="check search attributes",
        )
    except FailureError:  # a local activity's failure comes as its own error, not an ActivityError
        # Older workers answered no instead of failing: a rollout is never failed for its listing.
        workflow.logger.warning("search attributes unknown: the server did not answer; not listed")
        return False
    return known

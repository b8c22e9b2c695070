"""A new run records one patch marker (its generation) and upserts its search attributes at most
once per workflow task; what it leaves in the visibility store still says what status does (a
real dev server)."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from tests.support.rollouts import dry_run_spec, wait_for_status
from worker.main import build_worker
from workflows.patches import GENERATION
from workflows.search_attributes import (
    CANARY_WEIGHT_SEARCH_ATTRIBUTE,
    PHASE_SEARCH_ATTRIBUTE,
    STEP_SEARCH_ATTRIBUTE,
    WAITING_FOR_SEARCH_ATTRIBUTE,
)

UPSERT = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


async def _upserts_per_task(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """How many upsert commands each completed workflow task issued, in order."""
    counts: list[int] = []
    async for event in handle.fetch_history_events():
        if event.event_type == TASK_COMPLETED:
            counts.append(0)
        elif event.event_type == UPSERT:
            counts[-1] += 1
    return counts


async def test_a_gated_rollout_upserts_once_per_task_and_ends_listed_as_it_is(
    client: Client, task_queue: str
) -> None:
    steps = [{"setWeight": 10}, {"approval": {}}, {"setWeight": 50}, {"setWeight": 100}, {"removeOld": {}}]
    async with build_worker(client, task_queue):
        handle = await client.start_workflow(
            "Rollout", dry_run_spec(steps), id=f"upserts-{task_queue}", task_queue=task_queue
        )
        await wait_for_status(handle, lambda s: (s.get("waitingFor") or {}).get("kind") == "approval")
        described = await handle.describe()
        at_gate = described.typed_search_attributes
        assert at_gate.get(PHASE_SEARCH_ATTRIBUTE) == "WaitingForApproval"
        assert at_gate.get(STEP_SEARCH_ATTRIBUTE) == 2
        assert at_gate.get(CANARY_WEIGHT_SEARCH_ATTRIBUTE) == 10
        assert at_gate.get(WAITING_FOR_SEARCH_ATTRIBUTE) == "approval"
        await handle.execute_update("approve", {"by": "alice"})
        await handle.result()

    markers = [
        e.marker_recorded_event_attributes
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    patch_ids = [
        json.loads(marker.details["patch-data"].payloads[0].data)["id"]
        for marker in markers
        if marker.marker_name == "core_patch"
    ]
    assert patch_ids == [GENERATION]  # one marker stands for all the patches
    per_task = await _upserts_per_task(handle)
    assert max(per_task) == 1, per_task
    assert sum(per_task) >= 5  # it still follows the rollout: start, step 1, gate, steps 3-5, end
    ended = (await handle.describe()).typed_search_attributes
    assert ended.get(PHASE_SEARCH_ATTRIBUTE) == "Succeeded"
    assert ended.get(STEP_SEARCH_ATTRIBUTE) == 5
    assert ended.get(CANARY_WEIGHT_SEARCH_ATTRIBUTE) == 100
    assert ended.get(WAITING_FOR_SEARCH_ATTRIBUTE) is None

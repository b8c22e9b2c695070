"""A new run records one patch marker (its generation) and upserts its search attributes when an
activation's code can go no further; what it leaves in the visibility store still says what
status does (a real dev server). A run begun by a worker that asked each patch on its own goes on
under this one as it began, and replays."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

import workflows.events
import workflows.inbox
import workflows.ownership
import workflows.readiness
import workflows.rollback
import workflows.rollout
import workflows.search_attributes
import workflows.waits
from tests.support.rollouts import dry_run_spec, wait_for_status
from worker.main import WORKFLOW_RUNNER, build_worker
from workflows.patches import GENERATION, IMPLIED
from workflows.rollout import Rollout
from workflows.search_attributes import (
    CANARY_WEIGHT_SEARCH_ATTRIBUTE,
    PHASE_SEARCH_ATTRIBUTE,
    STEP_SEARCH_ATTRIBUTE,
    WAITING_FOR_SEARCH_ATTRIBUTE,
)

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
UPSERT = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
GATED: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"approval": {}},
    {"setWeight": 50},
    {"setWeight": 100},
    {"removeOld": {}},
]


async def _sluice_upserts_per_task(handle: WorkflowHandle[Any, Any]) -> list[int]:
    """How many upserts of sluicegate's attributes each completed workflow task issued (the
    ``TemporalChangeVersion`` upsert Temporal adds to a patch marker is not ours)."""
    counts: list[int] = []
    async for event in handle.fetch_history_events():
        if event.event_type == TASK_COMPLETED:
            counts.append(0)
        elif event.event_type == UPSERT:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            counts[-1] += any(name.startswith("Sluice") for name in fields)
    return counts


async def _patch_ids(handle: WorkflowHandle[Any, Any]) -> list[str]:
    return [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)["id"]
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


async def _at_gate(client: Client, task_queue: str, workflow_id: str) -> WorkflowHandle[Any, Any]:
    handle = await client.start_workflow(
        "Rollout", dry_run_spec(GATED), id=workflow_id, task_queue=task_queue
    )
    await wait_for_status(handle, lambda s: (s.get("waitingFor") or {}).get("kind") == "approval")
    return handle


async def test_a_gated_rollout_upserts_when_quiet_and_ends_listed_as_it_is(
    client: Client, task_queue: str
) -> None:
    async with build_worker(client, task_queue):
        handle = await _at_gate(client, task_queue, f"upserts-{task_queue}")
        at_gate = (await handle.describe()).typed_search_attributes
        assert at_gate.get(PHASE_SEARCH_ATTRIBUTE) == "WaitingForApproval"
        assert at_gate.get(STEP_SEARCH_ATTRIBUTE) == 2
        assert at_gate.get(CANARY_WEIGHT_SEARCH_ATTRIBUTE) == 10
        assert at_gate.get(WAITING_FOR_SEARCH_ATTRIBUTE) == "approval"
        await handle.execute_update("approve", {"by": "alice"})
        await handle.result()

    assert await _patch_ids(handle) == [GENERATION]  # one marker stands for all the patches
    per_task = await _sluice_upserts_per_task(handle)
    # Each step's three or four changes go out together (two turns of one activation at most).
    assert max(per_task) <= 2 and sum(per_task) <= len(per_task), per_task
    assert sum(per_task) >= 5  # it still follows the rollout: start, step 1, gate, steps 3-5, end
    ended = (await handle.describe()).typed_search_attributes
    assert ended.get(PHASE_SEARCH_ATTRIBUTE) == "Succeeded"
    assert ended.get(STEP_SEARCH_ATTRIBUTE) == 5
    assert ended.get(CANARY_WEIGHT_SEARCH_ATTRIBUTE) == 100
    assert ended.get(WAITING_FOR_SEARCH_ATTRIBUTE) is None


async def test_a_run_begun_asking_each_patch_goes_on_as_it_began_and_replays(
    client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker before the generation asked Temporal about each patch itself.
    asked_each = [workflows.events, workflows.inbox, workflows.ownership, workflows.readiness]
    asked_each += [workflows.rollback, workflows.rollout, workflows.waits]
    with monkeypatch.context() as older_worker:
        for module in asked_each:
            older_worker.setattr(module, "patched", workflow.patched)
        async with build_worker(client, task_queue):
            handle = await _at_gate(client, task_queue, f"older-{task_queue}")
    began_with = await _patch_ids(handle)
    assert GENERATION not in began_with and set(began_with) <= IMPLIED and len(began_with) >= 4

    async with build_worker(client, task_queue):  # this worker replays it, then carries on
        await handle.execute_update("approve", {"by": "alice"})
        await handle.result()
    assert GENERATION not in await _patch_ids(handle)
    assert (await handle.describe()).typed_search_attributes.get(PHASE_SEARCH_ATTRIBUTE) == "Succeeded"
    replayer = Replayer(
        workflows=[Rollout], data_converter=pydantic_data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    result = await replayer.replay_workflow(await handle.fetch_history(), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


def _upserts(history: Path) -> int:
    events = json.loads(history.read_text())["events"]
    return sum(e["eventType"] == "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES" for e in events)


def test_the_same_scenarios_upsert_less_since_the_generation() -> None:
    before, after = HISTORIES / "2026-12-05-seeing", HISTORIES / "2026-12-05-one-marker"
    pairs = [(_upserts(path), _upserts(after / path.name)) for path in sorted(before.glob("*.json"))]
    assert len(pairs) == 24
    assert all(new <= old for old, new in pairs), pairs
    assert sum(new for _, new in pairs) < 0.7 * sum(old for old, _ in pairs)


async def test_a_server_that_never_answers_the_check_leaves_the_rollout_unlisted_not_failed(
    client: Client, task_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local activity fails every attempt (a server too busy to answer): the rollout runs to
    its end without search attributes instead of failing for its listing."""
    # every attempt, 50 ms apart instead of 1 + 2 + 4 + 8 s
    quick = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=5)
    monkeypatch.setattr(workflows.search_attributes, "CHECK_RETRY", quick)
    attempts: list[int] = []

    @activity.defn(name="search_attributes_registered")
    async def busy(names: list[str]) -> bool:
        attempts.append(activity.info().attempt)
        raise RPCError("the server is busy", RPCStatusCode.UNAVAILABLE, b"")

    async with build_worker(client, task_queue, replacing=[busy]):
        handle = await client.start_workflow(
            "Rollout", dry_run_spec([{"setWeight": 100}]), id=f"unlisted-{task_queue}", task_queue=task_queue
        )
        result = await handle.result()
    assert result["phase"] == "Succeeded"
    assert attempts == [1, 2, 3, 4, 5]  # asked every time before giving up the listing
    described = (await handle.describe()).typed_search_attributes
    assert described.get(PHASE_SEARCH_ATTRIBUTE) is None  # never listed, never failed

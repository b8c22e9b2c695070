"""What the Temporal UI reads of a rollout, on a real dev server: the static summary and details
``sluice start`` sets, the current details the workflow keeps (the ``__temporal_workflow_metadata``
query the UI asks), and the summaries its activities and timers carry in the history."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from sluice.client import start_rollout
from tests.support.rollouts import dry_run_spec, wait_for_status
from worker.main import build_worker
from workflows.models import ApproveInput
from workflows.spec import validate_spec
from workflows.timeline import utc
from workflows.ui_details import static_summary

STEPS: list[dict[str, Any]] = [
    {"setWeight": 10},
    {"approval": {"timeout": "4h"}},
    {"pause": {"duration": "1s"}},
    {"setWeight": 100},
]


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the UI shows as "Current details" (it asks the same built-in query)."""
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return metadata.current_details


async def summaries(client: Client, handle: WorkflowHandle[Any, Any], kind: EventType.ValueType) -> list[str]:
    """The user-metadata summaries of the history's events of ``kind``, in order."""
    history = await handle.fetch_history()
    converter = client.data_converter.payload_converter

    def summary(event: HistoryEvent) -> str:
        if not event.user_metadata.HasField("summary"):
            return ""
        text: str = converter.from_payload(event.user_metadata.summary, str)
        return text

    return [summary(event) for event in history.events if event.event_type == kind]


async def test_a_rollout_at_a_gate_shows_summary_current_details_and_a_named_timeline(
    client: Client, task_queue: str
) -> None:
    data = dry_run_spec(STEPS)
    spec = validate_spec(data)
    async with build_worker(client, task_queue):
        handle = await start_rollout(client, data, spec, task_queue, f"rollout-ui-{uuid.uuid4()}")
        status = await wait_for_status(
            handle, lambda s: s["phase"] == "WaitingForApproval" and s["waitingFor"]["step"] == 2
        )

        described = await handle.describe()
        assert await described.static_summary() == static_summary(spec)
        assert (
            await described.static_summary() == f"{spec.service}: reviews-v1 → reviews-v2, 4 steps (dryRun)"
        )
        plan = await described.static_details()
        assert plan is not None and "- step 2: approval (timeout 4h, then abort)" in plan

        until = utc(datetime.fromisoformat(status["waitingFor"]["until"]))
        details = await current_details(handle)
        assert details.splitlines() == [
            "**WaitingForApproval** · step 2 of 4: approval (timeout 4h, then abort)",
            "",
            "- **traffic:** 90% reviews-v1 · 10% reviews-v2",
            f"- **waiting for:** approval at step 2 until {until}; approve (or promote) this step",
            "- **approvals:** none yet · 1 more needed",
        ]

        scheduled = await summaries(client, handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        assert scheduled == ["read route", "setWeight 0", "setWeight 10", "read route"]
        timers = await summaries(client, handle, EventType.EVENT_TYPE_TIMER_STARTED)
        assert timers == ["approval gate step 2 (timeout 4h)"]

        await handle.execute_update("approve", ApproveInput(by="alice", step=2))
        await handle.result()
        assert (await current_details(handle)).splitlines()[
            0
        ] == "**Succeeded** · step 4 of 4: setWeight 100% canary"

    timers = await summaries(client, handle, EventType.EVENT_TYPE_TIMER_STARTED)
    assert timers == ["approval gate step 2 (timeout 4h)", "bake 1s (step 3)"]
    scheduled = await summaries(client, handle, EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert scheduled[-1] == "setWeight 100"
    claims = await summaries(client, handle, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
    assert claims == [f"claim route {spec.route_identity()}"]

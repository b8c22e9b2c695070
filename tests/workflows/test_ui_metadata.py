"""What the Temporal UI reads of a rollout, on a real dev server: the static summary and details
``sluice start`` (or the README's ``temporal`` recipes) sets, the current details the workflow
keeps (the ``__temporal_workflow_metadata`` query the UI asks), and the summaries its activities
and timers carry in the history."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowHandle

from sluice.client import start_rollout
from tests.support.binaries import require_binary
from tests.support.rollouts import dry_run_spec, failure_of, wait_for_status
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


async def test_the_readme_recipes_static_summary_reaches_the_ui(
    client: Client, task_queue: str, tmp_path: Path
) -> None:
    """``temporal workflow start`` and ``temporal schedule create`` with ``--static-summary``, as
    the README's recipes run them (no worker needed: the summary is the start's)."""
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(dry_run_spec([{"setWeight": 10}])))
    summary = "reviews: reviews-v1 → reviews-v2, 1 step (dryRun)"
    temporal = [require_binary("temporal")]
    connection = ["--address", client.service_client.config.target_host, "--task-queue", task_queue]
    started = f"rollout-cli-{uuid.uuid4()}"
    schedule = f"nightly-{uuid.uuid4()}"
    run = functools.partial(subprocess.run, check=True, capture_output=True, timeout=60)
    run([*temporal, "workflow", "start", "--type", "Rollout", *connection, "--workflow-id", started,
         "--input-file", str(spec_file), "--static-summary", summary])  # fmt: skip
    run([*temporal, "schedule", "create", "--schedule-id", schedule, "--type", "Rollout", *connection,
         "--workflow-id", f"{started}-scheduled", "--cron", "0 3 * * 1-5", "--input-file", str(spec_file),
         "--static-summary", summary])  # fmt: skip
    try:
        run([*temporal, "schedule", "trigger", "--schedule-id", schedule, "--address", connection[1]])
        scheduled: list[str] = []
        deadline = time.monotonic() + 30
        while not scheduled and time.monotonic() < deadline:
            scheduled = [w.id async for w in client.list_workflows(f'TemporalScheduledById="{schedule}"')]
            await asyncio.sleep(0.2)
        assert len(scheduled) == 1
        for workflow_id in (started, scheduled[0]):
            handle = client.get_workflow_handle(workflow_id)
            assert await (await handle.describe()).static_summary() == summary
            await handle.terminate("test over")
    finally:
        run([*temporal, "schedule", "delete", "--schedule-id", schedule, "--address", connection[1]])


async def test_a_rollout_refused_at_start_says_why_in_its_current_details(
    client: Client, task_queue: str
) -> None:
    async with build_worker(client, task_queue):
        handle = await client.start_workflow(
            "Rollout",
            dry_run_spec([{"setWieght": 10}]),
            id=f"rollout-ui-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        await failure_of(handle)
        details = await current_details(handle)
    assert details.startswith("**Failed**")
    assert "- **outcome:** InvalidSpec: " in details and "setWieght" in details

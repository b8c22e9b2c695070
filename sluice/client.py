"""What the CLI does with Temporal: thin calls on a client, plus loading spec files."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from temporalio.api.enums.v1 import EventType, TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from sluice.audit import RunHistory
from workflows.analysis import AnalysisSpec
from workflows.spec import RolloutSpec, SpecError, validate_new_spec
from workflows.ui_details import static_details, static_summary

__all__ = [
    "RolloutNotFound",
    "live_status",
    "load_spec_file",
    "metric_limits",
    "rollout_runs",
    "start_rollout",
    "still_running",
    "task_queue_pollers",
]

STATUS_QUERY_TIMEOUT = timedelta(seconds=5)


class RolloutNotFound(Exception):
    """No workflow (or no run) of that id in the namespace."""


def load_spec_file(path: Path | Traversable) -> tuple[dict[str, Any], RolloutSpec]:
    """Read a YAML or JSON spec (a file, or a resource of an installed package); return it as
    JSON-ready data and validated.

    Raises :class:`SpecError` naming every problem, before anything reaches Temporal.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise SpecError([f"{path}: cannot read ({error.strerror})"]) from None
    try:
        data = json.loads(text) if path.name.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise SpecError([f"{path}: not valid YAML/JSON ({error})"]) from None
    spec = validate_new_spec(data)
    return data, spec


async def start_rollout(
    client: Client, data: dict[str, Any], spec: RolloutSpec, task_queue: str, workflow_id: str | None = None
) -> WorkflowHandle[Any, Any]:
    """Start ``Rollout`` with the user's own spec data (what ``temporal workflow start`` would send),
    with the Temporal UI's summary and details of the plan (see :mod:`workflows.ui_details`)."""
    return await client.start_workflow(
        "Rollout",
        data,
        id=workflow_id or spec.workflow_id,
        task_queue=task_queue,
        static_summary=static_summary(spec),
        static_details=static_details(spec),
    )


async def rollout_runs(client: Client, rollout_id: str, run_id: str | None = None) -> list[RunHistory]:
    """Every run of one rollout, oldest first: from ``run_id`` (default: the newest run of that
    workflow id) back along each run's ``continuedExecutionRunId`` and forward along each
    continue-as-new, so an id reused by a later rollout does not mix two rollouts together.

    Raises :class:`RolloutNotFound`.
    """
    try:
        described = await client.get_workflow_handle(rollout_id, run_id=run_id).describe()
        if described.workflow_type != "Rollout":
            raise RolloutNotFound(f"{rollout_id} is a {described.workflow_type} workflow, not a Rollout")
        runs = [await _run(client, rollout_id, described.run_id)]
        while (
            previous := runs[0]
            .events[0]
            .workflow_execution_started_event_attributes.continued_execution_run_id
        ):
            runs.insert(0, await _run(client, rollout_id, previous))
        while following := _continued_as(runs[-1]):
            runs.append(await _run(client, rollout_id, following))
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise RolloutNotFound(f"no rollout {rollout_id!r} in namespace {client.namespace}") from None
        raise
    return runs


async def _run(client: Client, rollout_id: str, run_id: str) -> RunHistory:
    history = await client.get_workflow_handle(rollout_id, run_id=run_id).fetch_history()
    return RunHistory(run_id, history.events)


def _continued_from(run: RunHistory) -> str:
    started = run.events[0].workflow_execution_started_event_attributes if run.events else None
    return started.continued_execution_run_id if started is not None else ""


def _continued_as(run: RunHistory) -> str:
    last = run.events[-1] if run.events else None
    if last is None or last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return ""
    return last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


def still_running(run: RunHistory) -> bool:
    """No close event yet (the run's history ends in something other than its end)."""
    closing = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
    return not run.events or run.events[-1].event_type not in closing


async def live_status(client: Client, rollout_id: str, run: RunHistory) -> dict[str, Any] | None:
    """The running run's ``status`` (its newest records), or None when no worker answers in time."""
    try:
        handle = client.get_workflow_handle(rollout_id, run_id=run.run_id)
        status: dict[str, Any] = await handle.query("status", rpc_timeout=STATUS_QUERY_TIMEOUT)
    except Exception:  # no worker, a worker too old to answer: the audit goes on without it
        return None
    return status


async def metric_limits(client: Client, rollout_id: str) -> dict[str, str]:
    """Each analysis metric's thresholds as people read them (``max 0.05``), from the spec the
    rollout was started with (the first event of its newest run); empty when it cannot be read."""
    try:
        async for event in client.get_workflow_handle(rollout_id).fetch_history_events(page_size=1):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            spec = json.loads(payloads[0].data) if payloads else {}
            analysis = AnalysisSpec.model_validate(spec["analysis"]) if spec.get("analysis") else None
            return {metric.name: metric.threshold() for metric in analysis.metrics} if analysis else {}
    except Exception:  # an old or odd spec: the view reads the limits from the measurements
        return {}
    return {}


async def task_queue_pollers(client: Client, task_queue: str) -> int | None:
    """How many workers polled ``task_queue`` for workflow tasks lately (None: could not ask)."""
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    try:
        described = await client.workflow_service.describe_task_queue(request)
    except RPCError:
        return None
    return len(described.pollers)
